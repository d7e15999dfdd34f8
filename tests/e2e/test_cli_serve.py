"""``govhub serve`` as an operator runs it: a real process, configured by environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hub.config import isolated_config
from tests.integration.test_registry_support import provision_admin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def govhub(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def hub_env(kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        GOVHUB_TOPIC_PREFIX=f"e2e{uuid.uuid4().hex[:8]}.",
        GOVHUB_STATE_DIR=str(tmp_path / "state"),
    )
    return env


@pytest.fixture
def serving(hub_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = None

    def start(*roles: str) -> tuple[subprocess.Popen[str], str]:
        nonlocal proc
        proc = govhub("serve", "--roles", ",".join(roles), env=hub_env)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "govhub serving" in line, (line, proc.stderr.read() if proc.stderr else "")
        return proc, line

    yield start  # type: ignore[misc]
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_router_alone_exposes_metrics_and_stops_cleanly(serving, hub_env) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    hub_env["GOVHUB_METRICS_PORT"] = str(port)
    proc, line = serving("router")
    assert f":{port}/metrics" in line
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert b"# HELP govhub_router_records_in_total" in body
    assert b"govhub_router_transaction_commit_seconds" in body
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_api_serves_health_registry_and_metrics(serving, hub_env) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    hub_env["GOVHUB_API_PORT"] = str(port)
    serving("api", "router")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while get(base + "/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert orjson.loads(get(base + "/readyz")[1]) == {"status": "ready"}
    registry = base + "/registry"
    assert get(registry + "/subjects")[0] == 401  # the registry needs a party's token
    token = provision_admin(
        isolated_config(
            hub_env["KAFKA_BOOTSTRAP_SERVERS"],
            hub_env["GOVHUB_TOPIC_PREFIX"],
            Path(hub_env["GOVHUB_STATE_DIR"]),
        )
    )
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10
    while get(registry + "/subjects", auth)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # the api reads the new party within moments
    assert get(registry + "/subjects", auth) == (200, b"[]")
    status, body = get(registry + "/schemas/ids/42", auth)
    assert status == 404 and orjson.loads(body)["error_code"] == 40403
    request = urllib.request.Request(
        registry + "/subjects/demo-value/versions",
        data=orjson.dumps(
            {"schema": '{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}'}
        ),
        method="POST",
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json", **auth},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        schema_id = orjson.loads(response.read())["id"]
    status, body = get(registry + "/subjects/demo-value/versions/latest", auth)
    assert status == 200 and orjson.loads(body)["id"] == schema_id
    assert b"govhub_api_requests_total" in get(base + "/metrics")[1]


def test_missing_broker_config_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    proc = govhub("serve", env=env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "kafka.bootstrap_servers is not set" in err and "Traceback" not in err
