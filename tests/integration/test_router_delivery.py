"""Router behaviour on real Kafka beyond the walking skeleton: the at-least-once mode, the
delivery audit written with the frames, and data-key rotation on a policy change."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from hub import kafka
from hub.crypto.frames import peek_header
from hub.demo.world import generate_records
from hub.router.engine import AUDIT_FIELDS
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


def read_all(world: HubWorld, topic: str, expect_at_least: int, timeout: float = 30.0) -> list[Any]:
    """Every committed record of ``topic`` (read_committed), once ``expect_at_least`` are
    there and a short quiet period passed."""
    consumer = kafka.consumer(
        world.bootstrap,
        f"test-read-{time.monotonic_ns()}",
        "test-reader",
        isolation_level="read_committed",
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(500, 0.3) if m.error() is None]
            found += batch
            if len(found) >= expect_at_least:
                if batch:
                    quiet_until = time.monotonic() + 1.0
                elif quiet_until is not None and time.monotonic() >= quiet_until:
                    break
                elif quiet_until is None:
                    quiet_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return found


def test_at_least_once_mode_delivers_every_record(kafka_bootstrap: str, tmp_path: Path) -> None:
    with hub_world(kafka_bootstrap, tmp_path, **{"router.exactly_once": False}) as world:
        world.publish(generate_records(200, invalid=0))
        for recipient, count in {"rsj": 200, "jianwai": 100, "chaowai-shenlu": 50}.items():
            client = world.receive(recipient, count)
            assert client.records == count, recipient
            lines = (world.tmp / "received" / f"{recipient}.jsonl").read_bytes().splitlines()
            ids = [orjson.loads(line)["record_id"] for line in lines]
            assert len(ids) == len(set(ids)) == count, recipient


def test_every_frame_is_on_the_delivery_audit(world: HubWorld) -> None:
    world.publish(generate_records(120, invalid=0))
    world.receive("rsj", 120)
    topics = world.runtime.state.topics
    frames = read_all(world, topics.delivery, 1)
    audits = read_all(world, topics.audit, 1)
    rows = []
    created: set[str] = set()
    for msg in audits:
        body = orjson.loads(msg.value())
        if body["kind"] == "control":  # the router's key creations, with their keys
            assert body["action"] == "key.create" and body["actor"].endswith("router")
            created.add(body["detail"]["key_id"])
            continue
        assert body["kind"] == "delivery" and body["fields"] == list(AUDIT_FIELDS)
        rows += [dict(zip(AUDIT_FIELDS, row, strict=True)) for row in body["frames"]]
    assert len(rows) == len(frames)
    assert created == {row["key_id"] for row in rows}  # every key used was audited
    by_tag = {row["tag"]: row for row in rows}
    for msg in frames:
        data = msg.value()
        header = peek_header(data)
        row = by_tag[data[-16:].hex()]
        assert row["recipient"] == header.recipient == msg.key().decode()
        assert row["subscription"] == header.subscription
        assert row["resource"] == header.resource
        assert (row["source_partition"], row["first_offset"], row["last_offset"]) == (
            header.source_partition,
            header.first_offset,
            header.last_offset,
        )
        assert row["key_id"] == header.key_id.hex()
        entries = dict(msg.headers() or [])["govhub-entries"]
        assert row["entries"] == int(entries)
    assert sum(r["entries"] for r in rows if r["recipient"] == "rsj") == 120


def _keys_by_recipient(world: HubWorld, expect: int) -> dict[str, set[bytes]]:
    keys: dict[str, set[bytes]] = {}
    for msg in read_all(world, world.runtime.state.topics.delivery, expect):
        header = peek_header(msg.value())
        keys.setdefault(header.recipient, set()).add(header.key_id)
    return keys


def test_a_policy_change_gives_the_recipient_a_new_data_key(world: HubWorld) -> None:
    data = generate_records(80, invalid=0)  # 20 per community
    world.publish(data[:40])
    world.receive("rsj", 40)
    before = _keys_by_recipient(world, 1)
    assert len(before["jianwai-yonganli"]) == 1 and len(before["chaowai-shenlu"]) == 1

    state = world.runtime.state
    sub = state.subscription("sub-jianwai-yonganli-dibao")
    assert sub is not None
    state.put_subscription(sub.model_copy(update={"fields": ("id_card", "name", "region_code")}))
    time.sleep(0.5)
    world.publish(data[40:], start=40)
    assert world.receive("rsj", 40).records == 40  # the sink resumes after the first 40
    after = _keys_by_recipient(world, 1)
    # The changed recipient's new frames use a new key; the others keep theirs.
    assert len(after["jianwai-yonganli"]) == 2
    assert after["chaowai-shenlu"] == before["chaowai-shenlu"]
    assert after["rsj"] == before["rsj"]


def router_restarts() -> float:
    return REGISTRY.get_sample_value("govhub_role_restarts_total", {"role": "router"}) or 0.0


def test_a_fenced_router_starts_again_in_its_process(world: HubWorld) -> None:
    """Another producer takes the router's transactional id: the router's producer is
    fenced (a fatal error). The router starts again in its process — new producer, same
    id, fencing the intruder in turn — and goes on from its last commit: every record
    arrives once."""
    rows = generate_records(60, invalid=0)
    world.publish(rows[:30])
    assert world.receive("rsj", 30).records == 30
    restarts = router_restarts()
    intruder = kafka.producer(
        world.bootstrap, "intruder", transactional_id=world.config.router.transactional_id
    )
    intruder.init_transactions(30)
    world.publish(rows[30:], start=30)
    deadline = time.monotonic() + 60
    while router_restarts() <= restarts:
        assert time.monotonic() < deadline, "the fenced router did not start again"
        time.sleep(0.2)
    # The same sink goes on from its cursor: the 30 records published since.
    assert world.receive("rsj", 30).records == 30
    lines = (world.tmp / "received" / "rsj.jsonl").read_bytes().splitlines()
    ids = [orjson.loads(line)["record_id"] for line in lines]
    assert sorted(ids) == sorted(f"test:{i}" for i in range(60))
    assert world.runtime.failure is None
