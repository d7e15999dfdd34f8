"""The walking skeleton on real Kafka: department → router → communities and streets."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from connectors.sdk.errors import SubscriptionRevoked
from hub import kafka
from hub.crypto.frames import peek_header
from hub.demo.world import generate_records
from hub.regions import jurisdiction_prefix
from hub.registry.framing import frame
from hub.subscriptions.model import SubscriptionStatus
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


def rows(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_end_to_end_isolation_and_masking(world: HubWorld) -> None:
    data = generate_records(200, invalid=0)  # 50 per community
    world.publish(data)
    expected = {"rsj": 200, "jianwai": 100, "jianwai-yonganli": 50, "chaowai-shenlu": 50}
    for recipient, count in expected.items():
        client = world.receive(recipient, count)
        received = rows(world.tmp / "received" / f"{recipient}.jsonl")
        assert len(received) == count, recipient
        ids = [r["record_id"] for r in received]
        assert len(set(ids)) == count, f"{recipient} got duplicates"
        prefix = jurisdiction_prefix(world.members[recipient].party.region_code)
        assert all(r["data"]["region_code"].startswith(prefix) for r in received)
        grassroots = world.members[recipient].party.is_grassroots
        for r in received:
            masked = "*" in r["data"]["id_card"] and r["data"]["name"].endswith("*")
            assert masked == grassroots, (recipient, r["data"])
        assert client.frames >= 1
    # The same input a community sees masked, its street sees in full.
    street = {r["record_id"]: r["data"] for r in rows(world.tmp / "received" / "jianwai.jsonl")}
    for r in rows(world.tmp / "received" / "jianwai-yonganli.jsonl"):
        full = street[r["record_id"]]
        assert r["data"]["id_card"][:6] == full["id_card"][:6]
        assert r["data"]["id_card"][-4:] == full["id_card"][-4:]
        assert r["data"]["amount"] == full["amount"]


def test_metrics_are_exported(world: HubWorld) -> None:
    world.publish(generate_records(20, invalid=0))
    world.receive("rsj", 20)
    with urllib.request.urlopen(world.runtime.api_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'govhub_router_records_in_total{resource="dibao"}' in text
    assert 'govhub_router_deliveries_total{resource="dibao",tier="department"}' in text
    assert "govhub_api_key_releases_total" in text
    for stage in ("consume", "policy", "route", "encrypt", "produce", "commit"):
        assert f'govhub_router_stage_seconds_total{{stage="{stage}"}}' in text, stage
    assert "govhub_router_lag_records{topic=" in text
    assert "govhub_router_audit_records_total" in text
    assert "govhub_router_transaction_commit_seconds_count" in text
    assert "govhub_connector_records_published_total" in text
    with urllib.request.urlopen(world.runtime.api_url + "/readyz", timeout=5) as response:
        assert orjson.loads(response.read())["status"] == "ready"


def _dead_letters(world: HubWorld, count: int, timeout: float = 30.0) -> list:  # type: ignore[type-arg]
    consumer = world.consumer(world.runtime.state.topics.dlq("mzj"))
    found = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            found += [m for m in consumer.consume(100, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return found


def test_invalid_region_lands_in_the_dead_letter_topic(world: HubWorld) -> None:
    good = generate_records(4, invalid=0)
    bad_region = {**good[0], "region_code": "11010500100X"}
    unknown_region = {**good[1], "region_code": "110105009009"}  # well formed, no such unit
    publisher = world.publish([*good, bad_region, unknown_region])
    assert publisher.stats.rejected == {"invalid-region": 1, "unknown-region": 1}
    # A record that skipped the connector's checks is caught by the router.
    producer = kafka.producer(world.bootstrap, "raw")
    codec = world.runtime.state.registry.codec(world.schema_id)
    producer.produce(
        world.runtime.state.topics.source("mzj", "dibao"),
        value=frame(world.schema_id, codec.encode(codec.from_json(good[1]))),
        headers=[
            ("govhub-region", b"99999"),
            ("govhub-record-id", b"raw-1"),
            ("govhub-ingested-at", b"1"),
        ],
    )
    producer.flush(10)
    letters = _dead_letters(world, 3)
    by_stage = {
        dict(m.headers())["govhub-dlq-stage"]: m
        for m in letters
        if dict(m.headers())["govhub-dlq-reason"] == b"invalid-region"
    }
    assert any(dict(m.headers())["govhub-dlq-reason"] == b"unknown-region" for m in letters)
    connector = by_stage[b"connector"]
    headers = dict(connector.headers())
    assert headers["govhub-dlq-reason"] == b"invalid-region"
    assert b"11010500100X" in headers["govhub-dlq-detail"]
    body = orjson.loads(connector.value())
    assert body["record"]["region_code"] == "11010500100X"
    assert body["record"]["id_card"] != bad_region["id_card"]  # personal fields redacted
    assert "*" in body["record"]["name"]
    router = dict(by_stage[b"router"].headers())
    assert router["govhub-dlq-reason"] == b"invalid-region"
    assert router["govhub-record-id"] == b"raw-1"
    # The good records were still delivered.
    assert world.receive("rsj", 4).records == 4


def test_revocation_stops_routing_and_key_release(world: HubWorld) -> None:
    world.publish(generate_records(8, invalid=0))
    assert world.receive("jianwai-yonganli", 2).records == 2
    sub = world.runtime.state.subscription("sub-jianwai-yonganli-dibao")
    assert sub is not None
    world.runtime.state.put_subscription(
        sub.model_copy(update={"status": SubscriptionStatus.REVOKED})
    )
    # A fresh client (no cached key) is refused its key.
    client = world.subscriber("jianwai-yonganli", sink_name="after-revoke")
    with pytest.raises(SubscriptionRevoked):
        client.run(threading.Event(), idle_timeout=5)
    # New records no longer reach the revoked community, but still reach its street.
    time.sleep(1.0)
    world.publish(generate_records(8, invalid=0), start=100)
    assert world.receive("jianwai", 8).records == 8
    consumer = world.consumer(world.runtime.state.topics.delivery)
    frames = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frames += [m for m in consumer.consume(500, 0.5) if m.error() is None]
    consumer.close()
    community_frames = [m for m in frames if m.key() == b"jianwai-yonganli"]
    street_frames = [m for m in frames if m.key() == b"jianwai"]
    assert len(street_frames) >= 2
    assert max(peek_header(m.value()).last_offset for m in community_frames) < max(
        peek_header(m.value()).last_offset for m in street_frames
    )
