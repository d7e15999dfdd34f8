"""``govhub subscribe`` as a unit runs it: a real process, a config file, a sink on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hub.demo.world import generate_records
from hub.subscriptions.model import SubscriptionStatus
from tests.integration.test_gateway import GatewayWorld, gateway_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[GatewayWorld]:
    with gateway_world(kafka_bootstrap, tmp_path) as w:
        yield w


def write_config(world: GatewayWorld, recipient: str, protocol: str) -> Path:
    key = world.tmp / f"{recipient}.key"
    key.write_bytes(world.members[recipient].private_key)
    key.chmod(0o600)
    path = world.tmp / f"{recipient}.toml"
    path.write_text(
        "[subscriber]\n"
        f'recipient = "{recipient}"\n'
        'token = "${UNIT_TOKEN}"\n'
        f'private_key_file = "{key}"\n'
        f'api_url = "{world.runtime.api_url}"\n'
        f'gateway_urls = ["{world.runtime.gateway_url}"]\n'
        f'protocol = "{protocol}"\n'
        'sink = "jsonl-sink"\n'
        f'name = "{recipient}-dibao"\n'
        "poll_wait_s = 2\n"
        "[sink]\n"
        f'path = "{world.tmp / "out" / f"{recipient}.jsonl"}"\n'
    )
    return path


def subscribe(world: GatewayWorld, config: Path, recipient: str) -> subprocess.Popen[str]:
    env = {**os.environ, "UNIT_TOKEN": world.members[recipient].token}
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "subscribe", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(world: GatewayWorld, recipient: str) -> list[dict[str, object]]:
    path = world.tmp / "out" / f"{recipient}.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def wait_rows(world: GatewayWorld, recipient: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(rows(world, recipient)) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_subscribe_streams_into_its_sink_resumes_and_stops_when_revoked(
    world: GatewayWorld,
) -> None:
    # A wrong setting stops it at once, naming the field (exit status 2).
    bad = write_config(world, "jianwai", "sse")
    bad.write_text(bad.read_text().replace('protocol = "sse"', 'protocol = "grpc"'))
    proc = subscribe(world, bad, "jianwai")
    assert proc.wait(30) == 2
    assert proc.stderr is not None and "subscriber.protocol" in proc.stderr.read()

    recipient = "jianwai-yonganli"
    config = write_config(world, recipient, "ws")
    world.publish(generate_records(40, invalid=0))
    proc = subscribe(world, config, recipient)
    wait_rows(world, recipient, 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    # Published while it was down: the next run resumes from the stored cursor.
    world.publish(generate_records(40, seed=3, invalid=0), start=100)
    proc = subscribe(world, config, recipient)
    wait_rows(world, recipient, 20)
    ids = [r["record_id"] for r in rows(world, recipient)]
    assert len(ids) == 20 and len(set(ids)) == 20
    # Revoked: the command ends by itself, exit status 3, with the reason.
    world.set_subscription(recipient, status=SubscriptionStatus.REVOKED)
    assert proc.wait(30) == 3
    assert proc.stderr is not None and "revoked" in proc.stderr.read()
