"""kill -9 of the router mid-stream: every entitled record arrives exactly once.

The router runs as its own process (``govhub serve --roles router``) on the test broker;
it is killed with SIGKILL several times while a backlog is being routed and restarted
each time. Subscribers then read everything: per recipient, the record ids must be
exactly the entitled set — no loss, no duplicate, nothing outside the jurisdiction.
"""

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
from confluent_kafka import TopicPartition

from hub import kafka
from hub.demo.world import generate_records
from hub.regions import jurisdiction_prefix
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

CHUNK = 4000
KILLS = 3


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path, roles=("api",)) as w:
        yield w


def start_router(world: HubWorld) -> subprocess.Popen[bytes]:
    cfg = world.config
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=cfg.kafka.bootstrap_servers,
        GOVHUB_TOPIC_PREFIX=cfg.kafka.topic_prefix,
        GOVHUB_KEK_FILE=str(cfg.crypto.kek_file),
        GOVHUB_STATE_DIR=str(cfg.state_dir),
        GOVHUB_METRICS_PORT="0",
    )
    # Same transactional id and group on every restart: the new instance fences the
    # killed one's open transaction, which the broker then aborts.
    # Small transactions, so a kill lands between and inside many of them.
    config = Path(cfg.state_dir) / "router.toml"
    config.write_text(
        "[router]\nconsume_batch = 100\nmax_transaction_records = 100\n"
        "transaction_interval_ms = 50\n"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--roles", "router", "--config", str(config)],
        env={
            **env,
            "GOVHUB_ROUTER_TRANSACTIONAL_ID": cfg.router.transactional_id,
            "GOVHUB_ROUTER_GROUP_ID": cfg.router.group_id,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def committed(world: HubWorld) -> int:
    """Source records the router group has committed (its transactions' offsets)."""
    topic = world.runtime.state.topics.source("mzj", "dibao")
    consumer = kafka.consumer(world.bootstrap, world.config.router.group_id, "test-probe")
    try:
        meta = consumer.list_topics(topic, timeout=10)
        tps = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def test_router_killed_mid_stream_loses_and_duplicates_nothing(world: HubWorld) -> None:
    rows = generate_records(CHUNK * (KILLS + 1), invalid=0)
    done = 0
    for kill in range(KILLS):
        world.publish(rows[kill * CHUNK : (kill + 1) * CHUNK], start=kill * CHUNK)
        router = start_router(world)
        assert router.stdout is not None
        assert b"govhub serving" in router.stdout.readline()
        # Kill as soon as this instance has committed something: it is mid-stream.
        deadline = time.monotonic() + 60
        now = committed(world)
        while now <= done and time.monotonic() < deadline:
            time.sleep(0.05)
            now = committed(world)
        router.send_signal(signal.SIGKILL)
        router.wait(10)
        # No offset queries until the next instance fences the killed one: its open
        # transaction keeps the group's offsets unstable until then.
        assert now > done, "the router made no progress before being killed"
        assert now < (kill + 1) * CHUNK, "the kill came after the backlog was done"
        done = now
    world.publish(rows[KILLS * CHUNK :], start=KILLS * CHUNK)
    router = start_router(world)
    try:
        assert router.stdout is not None
        assert b"govhub serving" in router.stdout.readline()
        expected_by_recipient = {}
        for recipient in ("rsj", "jianwai", "chaowai-shenlu", "jianwai-yonganli"):
            prefix = jurisdiction_prefix(world.members[recipient].party.region_code)
            expected_by_recipient[recipient] = {
                f"test:{i}" for i, r in enumerate(rows) if r["region_code"].startswith(prefix)
            }
        for recipient, expected in expected_by_recipient.items():
            world.receive(recipient, len(expected), timeout=120)
            lines = (world.tmp / "received" / f"{recipient}.jsonl").read_bytes().splitlines()
            ids = [orjson.loads(line)["record_id"] for line in lines]
            assert len(ids) == len(set(ids)), f"{recipient}: duplicates after router kills"
            assert set(ids) == expected, f"{recipient}: lost {len(expected - set(ids))} records"
    finally:
        router.send_signal(signal.SIGTERM)
        router.wait(30)
