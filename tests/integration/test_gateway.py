"""The gateway on real Kafka: api, router and gateway in this process, SDK clients over
SSE, WebSocket and NDJSON long-poll, sinks on disk and in PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from confluent_kafka import TopicPartition

from connectors.base import SourceRecord
from connectors.publisher import Publisher
from connectors.sdk.errors import (
    GatewayRefused,
    SequenceGap,
    SubscriptionRevoked,
    TamperedFrame,
    WrongKey,
)
from connectors.sdk.gateway import GatewaySettings, GatewaySubscriber
from connectors.sinks.base import Sink
from connectors.sinks.jsonl import JsonlSink
from hub import kafka
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.samples import SampleResource, load_sample
from hub.config import HubConfig, isolated_config
from hub.controlstate import CompactedTable
from hub.crypto.keyrelease import generate_recipient_key
from hub.delivery import RECORD_COUNT_HEADER
from hub.demo.world import Member, build_members, build_subscriptions, generate_records, provision
from hub.parties.model import PartyStatus
from hub.regions import jurisdiction_prefix
from hub.runtime import HubRuntime
from hub.subscriptions.model import SubscriptionStatus
from tests.pg_fixtures import PostgresServer
from tests.tls_files import certificates

pytestmark = pytest.mark.integration

ENTITLED = {"rsj": 1.0, "jianwai": 0.5, "chaowai": 0.5, "jianwai-yonganli": 0.25}


@dataclass
class GatewayWorld:
    config: HubConfig
    runtime: HubRuntime
    sample: SampleResource
    members: dict[str, Member]
    schema_id: int
    tmp: Path
    checkpoints: CompactedTable

    @property
    def bootstrap(self) -> str:
        return self.config.kafka.bootstrap_servers

    def publish(self, rows: Sequence[dict[str, Any]], start: int = 0) -> None:
        publisher = Publisher(
            connector="gw-test",
            bootstrap_servers=self.bootstrap,
            topics=self.runtime.state.topics,
            resource=self.sample.resource,
            schema_id=self.schema_id,
            codec=self.runtime.state.registry.codec(self.schema_id),
            checkpoints=self.checkpoints,
            regions=PartyRegions(self.runtime.state.parties),
        )
        publisher.publish(
            [SourceRecord(f"gw:{start + i}", row, {"n": start + i}) for i, row in enumerate(rows)]
        )
        publisher.close()

    def settings(self, recipient: str, protocol: str = "sse", **kw: Any) -> GatewaySettings:
        member = self.members[recipient]
        return GatewaySettings(
            gateway_urls=kw.pop("gateway_urls", (self.runtime.gateway_url,)),
            api_url=self.runtime.api_url,
            recipient=recipient,
            token=member.token,
            private_key=kw.pop("private_key", member.private_key),
            protocol=protocol,  # type: ignore[arg-type]
            poll_wait_s=kw.pop("poll_wait_s", 2.0),
            reconnect_initial_s=kw.pop("reconnect_initial_s", 0.05),
            reconnect_max_s=kw.pop("reconnect_max_s", 0.5),
            **kw,
        )

    def jsonl(self, name: str) -> JsonlSink:
        return JsonlSink(self.tmp / "received" / f"{name}.jsonl")

    def rows(self, name: str) -> list[dict[str, Any]]:
        path = self.tmp / "received" / f"{name}.jsonl"
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]

    def subscription(self, recipient: str) -> str:
        return f"sub-{recipient}-{self.sample.resource.code}"

    def set_subscription(self, recipient: str, **changes: Any) -> None:
        state = self.runtime.state
        sub = state.subscription(self.subscription(recipient))
        assert sub is not None
        state.put_subscription(sub.model_copy(update=changes))


@contextmanager
def gateway_world(bootstrap: str, tmp: Path, **overrides: Any) -> Iterator[GatewayWorld]:
    prefix = f"gw{uuid.uuid4().hex[:8]}."
    config = isolated_config(
        bootstrap,
        prefix,
        tmp / "state",
        **{"router.transaction_interval_ms": 100, "gateway.position_interval_s": 1.0, **overrides},
    )
    runtime = HubRuntime(config, ("api", "router", "gateway"))
    runtime.start()
    checkpoints = CompactedTable(bootstrap, runtime.state.topics.connect_offsets)
    try:
        runtime.wait_ready()
        checkpoints.start()
        sample = load_sample("mzj.dibao")
        members = build_members()
        schema_id = provision(
            runtime.state,
            kafka.admin_client(bootstrap),
            sample,
            members,
            build_subscriptions(sample.resource.code),
        )
        yield GatewayWorld(config, runtime, sample, members, schema_id, tmp, checkpoints)
    finally:
        checkpoints.stop()
        runtime.stop()


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[GatewayWorld]:
    with gateway_world(kafka_bootstrap, tmp_path) as w:
        yield w


async def run_until(
    clients: Sequence[GatewaySubscriber],
    done: Callable[[], bool],
    timeout: float = 60.0,
    stop: asyncio.Event | None = None,
) -> list[BaseException | None]:
    """Run the clients until ``done()`` (or a client fails, or ``timeout``); returns each
    client's error (None when it stopped on request)."""
    stop = stop or asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in clients]
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline and not any(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # anything beyond the expectation (a duplicate) shows up too
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def gateway_metrics(world: GatewayWorld) -> str:
    with urllib.request.urlopen(world.runtime.gateway_url + "/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def settled_metrics(world: GatewayWorld, name: str, minimum: float, **labels: str) -> str:
    """The gateway's metrics once ``name`` reached ``minimum`` (they are flushed every
    second), or as they are after a few seconds."""
    deadline = time.monotonic() + 5
    while True:
        text = gateway_metrics(world)
        if metric(text, name, **labels) >= minimum or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def check_rows(world: GatewayWorld, name: str, recipient: str, expected: int) -> None:
    rows = world.rows(name)
    ids = [r["record_id"] for r in rows]
    assert len(ids) == expected and len(set(ids)) == expected, (name, len(ids), len(set(ids)))
    prefix = jurisdiction_prefix(world.members[recipient].party.region_code)
    assert all(r["data"]["region_code"].startswith(prefix) for r in rows)
    grassroots = world.members[recipient].party.is_grassroots
    assert all(("*" in r["data"]["id_card"]) == grassroots for r in rows)


# -- the three protocols, resume ------------------------------------------------------------


def test_three_protocols_deliver_exactly_the_entitled_rows_and_resume(
    world: GatewayWorld,
) -> None:
    world.publish(generate_records(200, invalid=0))
    plan = [("rsj", "sse"), ("jianwai", "ws"), ("jianwai-yonganli", "poll"), ("chaowai", "sse")]
    sinks: dict[str, Sink] = {r: world.jsonl(r) for r, _ in plan}
    clients = {r: GatewaySubscriber(world.settings(r, p), sinks[r]) for r, p in plan}

    def reached(n: int) -> Callable[[], bool]:
        return lambda: all(clients[r].records >= ENTITLED[r] * n for r, _ in plan)

    assert asyncio.run(run_until(list(clients.values()), reached(200))) == [None] * 4
    for r, _ in plan:
        check_rows(world, r, r, int(ENTITLED[r] * 200))
    # Stopped, more published meanwhile, restarted: they resume from their sinks' cursors.
    world.publish(generate_records(80, seed=11, invalid=0), start=1000)
    clients = {r: GatewaySubscriber(world.settings(r, p), sinks[r]) for r, p in plan}
    assert asyncio.run(run_until(list(clients.values()), reached(80))) == [None] * 4
    for r, _ in plan:
        check_rows(world, r, r, int(ENTITLED[r] * 280))
        sinks[r].close()
    text = settled_metrics(world, "govhub_gateway_records_sent_total", 280, tier="department")
    for name in (
        "govhub_gateway_subscribers",
        "govhub_gateway_frames_sent_total",
        "govhub_gateway_bytes_sent_total",
        "govhub_gateway_subscriber_lag_seconds",
        "govhub_gateway_disconnects_total",
        "govhub_gateway_catchup_frames_read_total",
        "govhub_gateway_frame_latency_seconds_bucket",
    ):
        assert name in text, name
    assert metric(text, "govhub_gateway_frames_sent_total", tier="village", protocol="poll") >= 1
    assert metric(text, "govhub_gateway_records_sent_total", tier="department") >= 280


# -- revocation ----------------------------------------------------------------------------


def test_revocation_suspension_and_token_rotation_cut_streams_off(world: GatewayWorld) -> None:
    world.publish(generate_records(40, invalid=0))
    plan = [("jianwai-yonganli", "sse"), ("jianwai", "ws"), ("chaowai", "poll")]
    clients = {r: GatewaySubscriber(world.settings(r, p), world.jsonl(r)) for r, p in plan}

    async def scenario() -> tuple[list[BaseException | None], dict[str, float]]:
        stop = asyncio.Event()
        tasks = {r: asyncio.create_task(c.run(stop)) for r, c in clients.items()}
        while not all(c.records >= 10 for c in clients.values()):
            await asyncio.sleep(0.05)
        cut: dict[str, float] = {}
        changes: list[tuple[str, Callable[[], None]]] = [
            (
                "jianwai-yonganli",
                lambda: world.set_subscription(
                    "jianwai-yonganli", status=SubscriptionStatus.REVOKED
                ),
            ),
            (
                "jianwai",
                lambda: world.set_subscription("jianwai", status=SubscriptionStatus.SUSPENDED),
            ),
            (
                "chaowai",
                lambda: world.runtime.state.put_party(
                    world.members["chaowai"].party.model_copy(
                        update={"status": PartyStatus.SUSPENDED}
                    )
                ),
            ),
        ]
        for recipient, change in changes:
            written = time.monotonic()
            await asyncio.to_thread(change)
            while not tasks[recipient].done():
                await asyncio.sleep(0.005)
            cut[recipient] = time.monotonic() - written
        stop.set()
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results], cut

    errors, cut = asyncio.run(scenario())
    print(f"\ncut-off after the control write (s): {cut}")
    reasons = [e.reason if isinstance(e, SubscriptionRevoked) else e for e in errors]
    assert reasons == ["revoked", "suspended", "party-suspended"]
    # A new stream is refused with the reason, and so is key release.
    fresh = GatewaySubscriber(world.settings("jianwai-yonganli", "ws"), world.jsonl("after-revoke"))
    assert isinstance(asyncio.run(run_until([fresh], lambda: False, 5))[0], SubscriptionRevoked)
    with pytest.raises(SubscriptionRevoked):
        key_id = world.runtime.state.keys.items_keys()
        mine = [k for k in key_id if k.startswith("jianwai-yonganli/")]
        assert mine
        fresh._hub.release_key(
            "jianwai-yonganli",
            world.subscription("jianwai-yonganli"),
            bytes.fromhex(mine[0].split("/")[1]),
            world.members["jianwai-yonganli"].private_key,
            fresh._s.kem,
        )
    # Rotating rsj's token ends its stream with credentials-changed.
    rsj = GatewaySubscriber(world.settings("rsj", "sse"), world.jsonl("rsj"))

    async def rotate() -> BaseException | None:
        stop = asyncio.Event()
        task = asyncio.create_task(rsj.run(stop))
        while rsj.records < 40:
            await asyncio.sleep(0.05)
        party = world.members["rsj"].party
        await asyncio.to_thread(
            world.runtime.state.put_party, party.model_copy(update={"token_hash": "scrypt$00$00"})
        )
        result = await asyncio.gather(task, return_exceptions=True)
        return result[0] if isinstance(result[0], BaseException) else None

    error = asyncio.run(rotate())
    assert isinstance(error, SubscriptionRevoked) and error.reason == "credentials-changed"
    text = gateway_metrics(world)
    for reason in ("revoked", "suspended", "party-suspended", "credentials-changed"):
        assert metric(text, "govhub_gateway_disconnects_total", reason=reason) >= 1, reason


# -- rate limit ----------------------------------------------------------------------------


def test_rate_limit_paces_without_dropping(world: GatewayWorld) -> None:
    rate = 40
    world.set_subscription("rsj", rate_limit_per_s=rate)
    count = 200
    world.publish(generate_records(count, invalid=0))
    client = GatewaySubscriber(world.settings("rsj", "sse"), world.jsonl("rsj"))
    assert asyncio.run(run_until([client], lambda: client.records >= count, 60)) == [None]
    rows = world.rows("rsj")
    check_rows(world, "rsj", "rsj", count)
    by_partition: dict[str, list[int]] = {}
    for r in rows:  # in source order within each source partition
        topic_partition, _, offset = r["source"].rpartition("/")
        by_partition.setdefault(topic_partition, []).append(int(offset))
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())
    # Never faster than the limit: one second's allowance, then `rate` records a second.
    span = (rows[-1]["received_at_ms"] - rows[0]["received_at_ms"]) / 1000
    arrivals = [r["received_at_ms"] for r in rows]
    largest_frame = max(arrivals.count(t) for t in set(arrivals))
    assert span >= (count - rate - largest_frame) / rate
    text = settled_metrics(world, "govhub_gateway_throttled_seconds_total", 0.001)
    throttled = metric(text, "govhub_gateway_throttled_seconds_total")
    assert throttled > 0
    print(f"\n{count} records at {rate}/s took {span:.1f} s; throttled {throttled:.1f} s")


# -- slow consumer -------------------------------------------------------------------------


def test_a_stalled_client_is_disconnected_and_others_are_not_held_up(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with gateway_world(
        kafka_bootstrap,
        tmp_path,
        **{"gateway.client_buffer_bytes": 65_536, "gateway.upper_tier_buffer_bytes": 65_536},
    ) as world:
        url = world.runtime.gateway_url
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = url.removeprefix("http://").split(":")
        stalled.connect((host, int(port)))
        stalled.sendall(
            f"GET /v1/stream/sse HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {world.members['rsj'].token}\r\n\r\n".encode()
        )
        stalled.settimeout(10)
        assert b"200 OK" in stalled.recv(200)  # then it stops reading
        count = 3000
        world.publish(generate_records(count, invalid=0))
        other = GatewaySubscriber(world.settings("jianwai", "sse"), world.jsonl("jianwai"))
        assert asyncio.run(run_until([other], lambda: other.records >= count // 2)) == [None]
        check_rows(world, "jianwai", "jianwai", count // 2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = gateway_metrics(world)
            if metric(text, "govhub_gateway_disconnects_total", reason="slow-consumer") >= 1:
                break
            time.sleep(0.2)
        assert metric(text, "govhub_gateway_disconnects_total", reason="slow-consumer") >= 1
        stalled.close()
        # It resumes from its own cursor and gets everything, once.
        rsj = GatewaySubscriber(world.settings("rsj", "ws"), world.jsonl("rsj"))
        assert asyncio.run(run_until([rsj], lambda: rsj.records >= count)) == [None]
        check_rows(world, "rsj", "rsj", count)


# -- several gateways ----------------------------------------------------------------------


def test_gateways_share_partitions_redirect_and_take_over(world: GatewayWorld) -> None:
    second = HubRuntime(
        isolated_config(
            world.bootstrap,
            world.config.kafka.topic_prefix,
            world.tmp / "state",
            **{"gateway.group_id": world.config.gateway.group_id},
        ),
        ("gateway",),
    )
    second.start()
    try:
        second.wait_ready()
        first_gw, second_gw = world.runtime.gateway, second.gateway
        assert first_gw is not None and second_gw is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            first_gw.owned and second_gw.owned and len(first_gw.directory.rows()) == 2
        ):
            time.sleep(0.1)
        assert first_gw.owned and second_gw.owned
        assert not first_gw.owned & second_gw.owned
        # Each subscriber connects to the gateway that does NOT own its partition.
        world.publish(generate_records(120, invalid=0))
        plan = [("rsj", "sse"), ("jianwai", "ws"), ("jianwai-yonganli", "poll"), ("chaowai", "sse")]
        clients = {}
        for recipient, protocol in plan:
            partition = first_gw.partition_of(recipient)
            wrong = second.gateway_url if partition in first_gw.owned else world.runtime.gateway_url
            clients[recipient] = GatewaySubscriber(
                world.settings(recipient, protocol, gateway_urls=(wrong,)), world.jsonl(recipient)
            )

        def reached(n: int) -> Callable[[], bool]:
            return lambda: all(clients[r].records >= ENTITLED[r] * n for r, _ in plan)

        assert asyncio.run(run_until(list(clients.values()), reached(120))) == [None] * 4
        assert all(c.redirects >= 1 for c in clients.values())
        # The second gateway goes away; clients that know both URLs carry on with the first.
        urls = (second.gateway_url, world.runtime.gateway_url)
        clients = {
            r: GatewaySubscriber(world.settings(r, p, gateway_urls=urls), world.jsonl(r))
            for r, p in plan
        }

        async def failover() -> list[BaseException | None]:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(c.run(stop)) for c in clients.values()]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(second.stop)
            await asyncio.to_thread(world.publish, generate_records(60, seed=5, invalid=0), 500)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not reached(60)():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return [r if isinstance(r, BaseException) else None for r in results]

        assert asyncio.run(failover()) == [None] * 4
        for recipient, _ in plan:
            check_rows(world, recipient, recipient, int(ENTITLED[recipient] * 180))
    finally:
        second.stop()


# -- PostgreSQL, exactly once --------------------------------------------------------------


def test_postgres_sink_holds_every_row_once_across_reconnects(
    world: GatewayWorld, pg_server: PostgresServer, pg_database: str
) -> None:
    from connectors.sinks.postgres import PostgresSink, PostgresSinkConfig

    config = PostgresSinkConfig.model_validate(
        {"dsn": pg_database, "table": "dibao", "key": ["_record_id"], "create_tables": True}
    )
    world.publish(generate_records(120, invalid=0))
    expected, written = 60, 0

    def received_any(client: GatewaySubscriber) -> Callable[[], bool]:
        return lambda: client.records > 0

    # Each run is stopped as soon as it has written something: mid-stream, while more is
    # being published; the next run resumes from the cursor stored with the rows.
    for round_, protocol in enumerate(("sse", "ws", "poll", "sse")):
        sink = PostgresSink("jianwai-dibao", config)
        client = GatewaySubscriber(world.settings("jianwai", protocol), sink)
        asyncio.run(run_until([client], received_any(client), timeout=20))
        written += sink.records_written
        sink.close()
        world.publish(generate_records(60, seed=round_ + 20, invalid=0), start=1000 * (round_ + 1))
        expected += 30
    sink = PostgresSink("jianwai-dibao", config)
    client = GatewaySubscriber(world.settings("jianwai", "ws"), sink)
    before = written
    asyncio.run(run_until([client], lambda: before + client.records >= expected))
    written += sink.records_written
    sink.close()
    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(pg_database)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM dibao"))
        finally:
            await conn.close()

    assert asyncio.run(count()) == expected
    assert written == expected  # every record written once across all the runs


# -- clear errors --------------------------------------------------------------------------


def test_wrong_key_tampered_frame_and_gap_are_reported(world: GatewayWorld) -> None:
    world.publish(generate_records(8, invalid=0))
    wrong_private, _ = generate_recipient_key()
    client = GatewaySubscriber(
        world.settings("jianwai", "sse", private_key=wrong_private), world.jsonl("wrong-key")
    )
    assert isinstance(asyncio.run(run_until([client], lambda: False, 20))[0], WrongKey)

    # A frame altered on its way (one bit of its ciphertext) is refused, nothing written.
    good = GatewaySubscriber(world.settings("rsj", "sse"), world.jsonl("rsj"))
    assert asyncio.run(run_until([good], lambda: good.records >= 8)) == [None]
    topic = world.runtime.state.topics.delivery
    consumer = kafka.consumer(world.bootstrap, f"t-{uuid.uuid4().hex}", "test")
    partition = world.runtime.gateway.partition_of("rsj")  # type: ignore[union-attr]
    consumer.assign([TopicPartition(topic, partition, 0)])
    frames = []
    while not frames:
        frames = [m for m in consumer.consume(100, 1.0) if m.error() is None and m.key() == b"rsj"]
    consumer.close()
    # Moved to a later offset range (header bytes 26..41, the AAD): the replay guard lets
    # it through, the tag does not.
    tampered = bytearray(frames[0].value())
    tampered[26:42] = (10**6).to_bytes(8, "big") * 2
    producer = kafka.producer(world.bootstrap, "tamper")
    producer.produce(
        topic,
        key=b"rsj",
        value=bytes(tampered),
        partition=partition,
        headers=[(RECORD_COUNT_HEADER, b"2")],
    )
    producer.flush(10)
    again = GatewaySubscriber(world.settings("rsj", "ws"), world.jsonl("rsj"))
    error = asyncio.run(run_until([again], lambda: False, 20))[0]
    assert isinstance(error, TamperedFrame)
    check_rows(world, "rsj", "rsj", 8)  # the sink did not move past it

    # Records removed by retention before delivery: the stream reports the gap.
    admin = kafka.admin_client(world.bootstrap)
    cursor = world.jsonl("jianwai-yonganli").load_cursor()
    assert cursor is None
    stale = world.jsonl("stale")
    from connectors.sinks.base import Cursor

    yonganli_partition = world.runtime.gateway.partition_of("jianwai-yonganli")  # type: ignore[union-attr]
    stale.write([], Cursor(yonganli_partition, 0, {"v": 1, "last": []}))
    _, high = kafka.consumer(world.bootstrap, "wm", "wm").get_watermark_offsets(
        TopicPartition(topic, yonganli_partition), timeout=10
    )
    admin.delete_records([TopicPartition(topic, yonganli_partition, high)])[
        TopicPartition(topic, yonganli_partition, high)
    ].result(30)
    gap = GatewaySubscriber(world.settings("jianwai-yonganli", "poll"), stale)
    error = asyncio.run(run_until([gap], lambda: False, 20))[0]
    assert isinstance(error, SequenceGap) and error.missing is not None

    # A cursor of another partition is refused with the reason.
    other = world.jsonl("wrong-partition")
    other.write([], Cursor((yonganli_partition + 1) % 6, 0, {"v": 1, "last": []}))
    refused = GatewaySubscriber(world.settings("jianwai-yonganli", "sse"), other)
    error = asyncio.run(run_until([refused], lambda: False, 20))[0]
    assert isinstance(error, GatewayRefused) and error.status == 409


def test_bad_requests_get_clear_answers(world: GatewayWorld) -> None:
    url = world.runtime.gateway_url

    async def probe(fresh_connections: bool) -> list[tuple[int, str]]:
        # On one connection that began with an SSE request, aiohttp answers the long-polls
        # too; on fresh connections they take the gateway's lean path. Same answers.
        token = world.members["rsj"].token
        connector = aiohttp.TCPConnector(force_close=fresh_connections)
        async with aiohttp.ClientSession(connector=connector) as http:
            out = []
            for path, headers in (
                ("/v1/stream/sse", {}),
                ("/v1/stream/sse", {"Authorization": "Bearer nope"}),
                ("/v1/stream/sse?cursor=x", {"Authorization": f"Bearer {token}"}),
                ("/v1/stream/poll?cursor=0:99999999", {"Authorization": f"Bearer {token}"}),
                ("/v1/stream/ws", {"Authorization": "Bearer ght_forged.mac"}),
                ("/v1/stream/poll?wait=abc", {"Authorization": f"Bearer {token}"}),
                ("/v1/stream/sse", {"Authorization": "Bearer ghp_rsj.not-its-secret"}),
            ):
                async with http.get(url + path, headers=headers) as response:
                    body = await response.json()
                    out.append((response.status, body.get("reason", "")))
            return out

    def polls() -> tuple[float, float]:
        text = gateway_metrics(world)
        name = "govhub_gateway_poll_requests_total"
        return metric(text, name, path="lean"), metric(text, name, path="aiohttp")

    before = polls()
    answers = asyncio.run(probe(False))
    assert asyncio.run(probe(True)) == answers
    after = polls()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)
    partition = world.runtime.gateway.partition_of("rsj")  # type: ignore[union-attr]
    assert answers[0] == (401, "unauthenticated")
    assert answers[1] == (401, "unauthenticated")
    assert answers[2] == (400, "bad-cursor")
    assert answers[3][0] in (400, 409)  # beyond the end, or another partition's cursor
    assert answers[3][1] == ("bad-cursor" if partition == 0 else "wrong-partition")
    assert answers[4] == (401, "ticket")
    assert answers[5] == (400, "bad-request")
    assert answers[6] == (401, "unauthenticated")
    # Every refused credential is on the audit trail, with the party it claimed.
    failed = _audit_events(world, lambda e: e.get("action") == "sign-in.failed", 8)
    assert all(e["target"] == "gateway" and e["outcome"] == "failed" for e in failed)
    assert sorted(e["detail"]["reason"] for e in failed) == ["ticket"] * 2 + ["unauthenticated"] * 6
    assert [e["actor"] for e in failed].count("rsj") == 2
    assert "not-its-secret" not in orjson.dumps(failed).decode()


def test_failed_sign_ins_are_limited_per_address(world: GatewayWorld) -> None:
    """Twenty refused tokens from one address, then 429 with Retry-After before any token
    is checked — the right one too, until the bucket refills (one a second)."""
    url = world.runtime.gateway_url + "/v1/stream/sse"

    async def probe() -> list[tuple[int, str | None]]:
        token = world.members["rsj"].token
        async with aiohttp.ClientSession() as http:
            out = []
            for headers in [{"Authorization": "Bearer ghp_rsj.guess"}] * 22 + [
                {"Authorization": f"Bearer {token}"}
            ]:
                async with http.get(url, headers=headers) as response:
                    out.append((response.status, response.headers.get("Retry-After")))
            return out

    answers = asyncio.run(probe())
    assert [status for status, _ in answers[:20]] == [401] * 20
    assert all(status == 429 and retry for status, retry in answers[20:])
    # Only the refused credentials are audited, not the requests turned away before.
    failed = _audit_events(world, lambda e: e.get("action") == "sign-in.failed", 20)
    assert len(failed) == 20


def _audit_events(
    world: GatewayWorld, wanted: Callable[[dict[str, Any]], bool], count: int
) -> list[dict[str, Any]]:
    topic = world.runtime.state.topics.audit
    consumer = kafka.consumer(world.config.kafka.bootstrap_servers, f"t-{uuid.uuid4()}", "t")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < count and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    event = orjson.loads(msg.value())
                    if wanted(event):
                        found.append(event)
    finally:
        consumer.close()
    assert len(found) == count, found
    return found


# -- TLS and client certificates -----------------------------------------------------------


def test_tls_with_optional_client_certificates(kafka_bootstrap: str, tmp_path: Path) -> None:
    import ssl

    files = certificates(tmp_path)
    overrides = {
        "gateway.tls_cert_file": str(files["server_cert"]),
        "gateway.tls_key_file": str(files["server_key"]),
        "gateway.tls_client_ca_file": str(files["ca"]),
    }
    with gateway_world(kafka_bootstrap, tmp_path, **overrides) as world:
        assert world.runtime.gateway_url.startswith("https://")
        party = world.members["jianwai"].party
        world.runtime.state.put_party(
            party.model_copy(update={"mtls_subject": "CN=jianwai,O=GovHub"})
        )
        world.publish(generate_records(8, invalid=0))
        trusting = ssl.create_default_context(cafile=str(files["ca"]))
        with_cert = ssl.create_default_context(cafile=str(files["ca"]))
        with_cert.load_cert_chain(files["client_cert"], files["client_key"])

        async def poll(context: ssl.SSLContext) -> tuple[int, list[dict[str, Any]]]:
            url = world.runtime.gateway_url + "/v1/stream/poll?wait=0"
            connector = aiohttp.TCPConnector(ssl=context)
            async with (
                aiohttp.ClientSession(connector=connector) as http,
                http.get(url) as response,
            ):
                body = await response.read()
                lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
                return response.status, lines

        status, events = asyncio.run(poll(with_cert))  # no token: the certificate decides
        assert status == 200 and events[0]["recipient"] == "jianwai"
        assert events[0]["ticket"] is None  # certificate streams need no ticket
        status, events = asyncio.run(poll(trusting))
        assert status == 401 and events[0]["reason"] == "unauthenticated"
        # The SDK over TLS, authenticated by token.
        client = GatewaySubscriber(
            world.settings("jianwai", "sse", ssl_context=trusting), world.jsonl("jianwai")
        )
        assert asyncio.run(run_until([client], lambda: client.records >= 4)) == [None]
        check_rows(world, "jianwai", "jianwai", 4)
