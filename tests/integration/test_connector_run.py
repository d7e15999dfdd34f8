"""``govhub connector run`` as a department runs it, against a hub on real Kafka."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.audit.store import read_topic
from hub.demo.world import generate_records, write_jsonl
from hub.localkafka import LocalKafka, find_free_base_port
from tests.fault.delivery_check import load_sources
from tests.integration.hubworld import HubWorld, hub_world
from tests.ops.tools import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


def run_connector(config: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "connector", "run", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stderr


def write_metered_connector(
    config: Path, name: str, bootstrap: str, world: HubWorld, data: Path, port: int, extra: str = ""
) -> None:
    """A JSON-lines connector of ``data`` that serves its metrics on ``port``."""
    config.write_text(
        f"""
[connector]
name = "{name}"
type = "jsonl-file"
resource = "dibao"
{extra}
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{world.config.kafka.topic_prefix}"

[source]
path = "{data}"

[metrics]
port = {port}
"""
    )


def start_connector(config: Path, stderr: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "connector", "run", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def test_connector_publishes_resumes_and_rejects(world: HubWorld, tmp_path: Path) -> None:
    data = tmp_path / "dibao.jsonl"
    rows = generate_records(30, invalid=2)
    write_jsonl(data, rows)
    config = tmp_path / "connector.toml"
    config.write_text(
        f"""
[connector]
name = "it-dibao-file"
type = "jsonl-file"
resource = "dibao"
batch_size = 7
stop_when_idle = true

[kafka]
bootstrap_servers = "{world.bootstrap}"
topic_prefix = "{world.config.kafka.topic_prefix}"

[source]
path = "{data}"
"""
    )
    code, err = run_connector(config)
    assert code == 0, err
    assert "read 32, published 30, rejected 2" in err
    # A second run resumes from the checkpoint: nothing is published twice.
    code, err = run_connector(config)
    assert code == 0 and "read 0, published 0" in err, err
    with data.open("ab") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in generate_records(5, seed=9, invalid=0)))
    code, err = run_connector(config)
    assert code == 0 and "read 5, published 5" in err, err
    assert world.receive("rsj", 35).records == 35


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[connector]\nname = "x"\ntype = "nope"\nresource = "dibao"\n'
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n'
    )
    code, err = run_connector(config)
    assert code == 2
    assert "unknown connector type 'nope'" in err and "Traceback" not in err


def test_a_running_connector_serves_its_metrics(world: HubWorld, tmp_path: Path) -> None:
    data = tmp_path / "dibao.jsonl"
    write_jsonl(data, generate_records(12, invalid=1))
    port = free_port()
    config = tmp_path / "connector.toml"
    write_metered_connector(config, "it-dibao-metrics", world.bootstrap, world, data, port)
    proc = start_connector(config, subprocess.PIPE)
    try:
        wanted = {
            'govhub_connector_records_read_total{connector="it-dibao-metrics"} 13.0',
            "govhub_connector_records_published_total"
            '{connector="it-dibao-metrics",resource="dibao"} 12.0',
        }
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while time.monotonic() < deadline and not wanted <= seen:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    seen = set(r.read().decode().splitlines())
            except OSError:
                pass
            time.sleep(0.3)
        assert wanted <= seen, [line for line in seen if "it-dibao-metrics" in line]
        assert any(
            line.startswith("govhub_connector_records_rejected_total")
            and 'connector="it-dibao-metrics"' in line
            and line.endswith(" 1.0")
            for line in seen
        )
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_metrics_port_in_use_is_a_clear_config_error(world: HubWorld, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = tmp_path / "connector.toml"
        config.write_text(
            '[connector]\nname = "x"\ntype = "jsonl-file"\nresource = "dibao"\n'
            f'[kafka]\nbootstrap_servers = "{world.bootstrap}"\n'
            f'[source]\npath = "{tmp_path / "none.jsonl"}"\n'
            f"[metrics]\nport = {taken.getsockname()[1]}\n"
        )
        code, err = run_connector(config)
    assert code == 2, err
    assert "metrics.port: cannot serve /metrics" in err


def _scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            lines = r.read().decode().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        if line.startswith("govhub_connector_") and " " in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_a_connector_rides_out_kafka_going_away(tmp_path: Path) -> None:
    """The broker stops while a batch waits for it: the batch fails, and the connector
    process, instead of ending, resumes from its checkpoint once Kafka is back. Every row
    reaches the source topic; at most the one failed batch twice."""
    broker = LocalKafka(
        tmp_path / "kafka",
        base_port=find_free_base_port(1),
        heap_mb=384,
        extra_config={"broker.heartbeat.interval.ms": "500", "broker.session.timeout.ms": "2000"},
    )
    bootstrap = broker.up(timeout=180)
    proc: subprocess.Popen[str] | None = None
    log_path = tmp_path / "connector.log"
    try:
        with hub_world(bootstrap, tmp_path, roles=("api",)) as world:
            data = tmp_path / "dibao.jsonl"
            write_jsonl(data, generate_records(120, invalid=0))
            port = free_port()
            config = tmp_path / "connector.toml"
            write_metered_connector(
                config,
                "it-dibao-outage",
                bootstrap,
                world,
                data,
                port,
                "batch_size = 40\npoll_interval_s = 0.05\nconfirm_timeout_s = 2\n",
            )
            # Its log goes to a file: the client library logs every refused connection
            # while the broker is away, more than a pipe holds.
            with log_path.open("w") as log:
                proc = start_connector(config, log)
            published = (
                "govhub_connector_records_published_total"
                '{connector="it-dibao-outage",resource="dibao"}'
            )
            restarts = 'govhub_connector_restarts_total{connector="it-dibao-outage"}'

            def wait_for(predicate: Any, what: str, timeout: float = 90.0) -> dict[str, float]:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    assert proc is not None and proc.poll() is None, log_path.read_text()[-3000:]
                    seen = _scrape(port)
                    if predicate(seen):
                        return seen
                    time.sleep(0.2)
                raise AssertionError(f"{what}: {_scrape(port)}")

            wait_for(lambda m: m.get(published) == 120, "the first rows published")
            broker.down()
            with data.open("ab") as f:
                rows = generate_records(80, seed=9, invalid=0)
                f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            wait_for(lambda m: m.get(restarts, 0) >= 1, "a failed batch noticed")
            broker.up(timeout=180)
            # The counter counts every acknowledged record, the ones published again too.
            wait_for(lambda m: m.get(published, 0) >= 200, "the rows published after the outage")
            topic = world.runtime.state.topics.source("mzj", "dibao")
            stored, repeated = load_sources(bootstrap, [topic])
            assert {int(i.rsplit(":", 1)[1]) for i in stored} == set(range(1, 201))
            assert len(repeated) <= 40, "more than the failed batch published twice"
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
            err = log_path.read_text()
            assert proc.returncode == 0, err[-3000:]
            assert "Traceback" not in err, err[-3000:]
            assert "resuming from the last checkpoint" in err
        broker.down()


def test_the_http_source_audits_refused_sign_ins(world: HubWorld, tmp_path: Path) -> None:
    """Through `govhub connector run`: a refused token is an audit event in the hub's
    audit topic, naming the party the token claims and the connector."""
    port = free_port()
    config = tmp_path / "http.toml"
    config.write_text(
        f"""
[connector]
name = "it-dibao-http"
type = "http"
resource = "dibao"

[kafka]
bootstrap_servers = "{world.bootstrap}"
topic_prefix = "{world.config.kafka.topic_prefix}"

[source]
port = {port}
"""
    )
    with (tmp_path / "http.log").open("w") as log:
        proc = start_connector(config, log)
    try:
        url = f"http://127.0.0.1:{port}/v1/records"
        request = urllib.request.Request(
            url,
            data=orjson.dumps(generate_records(1, invalid=0)),
            headers={"Authorization": "Bearer ghp_mzj.not-the-token"},
        )
        deadline = time.monotonic() + 60
        status = None
        while status is None:
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "http.log"
            ).read_text()[-3000:]
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.3)  # not listening yet
        assert status in (401, 403)
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            for _, _, value in read_topic(world.bootstrap, world.runtime.state.topics.audit):
                event = orjson.loads(value or b"{}")
                if event.get("target") == "connector:it-dibao-http":
                    found.append(event)
            time.sleep(0.3)
        assert found, "no audit event of the refused sign-in"
        event = found[0]
        assert event["action"] == "sign-in.failed" and event["actor"] == "mzj"
        assert "not-the-token" not in orjson.dumps(event).decode()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
