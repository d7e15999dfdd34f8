"""``govhub connector run`` as a department runs it, against a hub on real Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hub.demo.world import generate_records, write_jsonl
from tests.integration.hubworld import HubWorld, hub_world

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
