"""``govhub connector run`` as a department runs it, against a hub on real Kafka."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hub.demo.world import generate_records, write_jsonl
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
    config.write_text(
        f"""
[connector]
name = "it-dibao-metrics"
type = "jsonl-file"
resource = "dibao"

[kafka]
bootstrap_servers = "{world.bootstrap}"
topic_prefix = "{world.config.kafka.topic_prefix}"

[source]
path = "{data}"

[metrics]
port = {port}
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "connector", "run", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
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
