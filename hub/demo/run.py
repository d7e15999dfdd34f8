"""``govhub demo``: a department publishes, communities and streets receive their part.

Starts local Kafka when no broker is configured, provisions a small world, publishes
synthetic 低保 records through the file connector, runs the router and one subscriber per
recipient, shows live progress, and ends with a table proving isolation and masking.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from connectors.publisher import Publisher
from connectors.sdk.client import SubscriberClient, SubscriberSettings
from connectors.sinks.jsonl import JsonlSink
from connectors.sources.file import JsonlFileSource
from hub import kafka
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.samples import load_sample
from hub.config import HubConfig, load_config
from hub.controlstate import CompactedTable
from hub.demo.world import (
    COMMUNITIES,
    CONSUMER_DEPT,
    STREETS,
    Member,
    build_members,
    build_subscriptions,
    generate_records,
    provision,
    write_jsonl,
)
from hub.localkafka import LocalKafka
from hub.localkafka.paths import default_state_dir
from hub.regions import jurisdiction_prefix
from hub.runtime import HubRuntime

log = logging.getLogger(__name__)


@dataclass
class Check:
    recipient: str
    name: str
    tier: str
    expected: int
    received: int
    own_rows_only: bool
    masked: bool
    expect_masked: bool
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> bool:
        return (
            self.received == self.expected
            and self.own_rows_only
            and self.masked == self.expect_masked
        )


def _is_masked(data: dict[str, Any]) -> bool:
    return "*" in str(data.get("id_card", "")) and "*" in str(data.get("name", ""))


def verify_sink(
    path: Path, member: Member, expected_rows: int, expect_masked: bool, tier: str
) -> Check:
    prefix = jurisdiction_prefix(member.party.region_code)
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []
    ids = [r["record_id"] for r in rows]
    own = all(r["data"]["region_code"].startswith(prefix) for r in rows) and len(ids) == len(
        set(ids)
    )
    masked = bool(rows) and all(_is_masked(r["data"]) for r in rows)
    latencies = sorted(r["received_at_ms"] - r["ingested_at_ms"] for r in rows) or [0]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Check(
        member.party.id,
        member.party.name,
        tier,
        expected_rows,
        len(rows),
        own,
        masked,
        expect_masked,
        float(statistics.median(latencies)),
        float(p99),
    )


def read_dead_letters(config: HubConfig, topic: str, timeout: float = 10.0) -> dict[str, int]:
    """Count the records in a dead-letter topic by reason, reading them back from Kafka."""
    consumer = kafka.consumer(
        config.kafka.bootstrap_servers,
        f"govhub-demo-dlq-{time.time_ns()}",
        "govhub-demo",
        config.kafka.client_config,
        enable_partition_eof=True,
    )
    reasons: dict[str, int] = {}
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = consumer.consume(500, 0.5)
            if any(m.error() is not None for m in messages) and reasons:
                break  # reached the end of the (single) partition
            for msg in messages:
                if msg.error() is None:
                    reason = dict(msg.headers() or ()).get("govhub-dlq-reason") or b"?"
                    key = reason.decode() if isinstance(reason, bytes) else str(reason)
                    reasons[key] = reasons.get(key, 0) + 1
    finally:
        consumer.close()
    return reasons


def _shutdown(
    stop: threading.Event,
    clients: list[tuple[SubscriberClient, threading.Thread]],
    publisher: Publisher | None,
    checkpoints: CompactedTable | None,
) -> None:
    """Stop the demo's own clients (idempotent), before the hub and the broker go."""
    stop.set()
    for _, thread in clients:
        thread.join(timeout=10)
    if publisher is not None:
        publisher.close()
    if checkpoints is not None:
        checkpoints.stop()


def run_demo(
    records: int = 3000,
    rate: int = 1000,
    out_dir: Path = Path("demo-out"),
    keep_running: bool = False,
    config: HubConfig | None = None,
    stream: TextIO = sys.stdout,
    timeout: float = 180.0,
) -> int:
    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    started = time.monotonic()
    local: LocalKafka | None = None
    if config is None:
        try:
            config = load_config()
        except Exception:
            local = LocalKafka(default_state_dir() / "kafka")
            say("· no Kafka configured: starting a local single-node Apache Kafka (KRaft) …")
            t0 = time.monotonic()
            bootstrap = local.up()
            say(f"  Kafka ready at {bootstrap} in {time.monotonic() - t0:.1f}s")
            config = load_config(overrides={"kafka.bootstrap_servers": bootstrap})
    prefix = f"demo{int(time.time())}."
    config = config.model_copy(
        update={
            "kafka": config.kafka.model_copy(update={"topic_prefix": prefix}),
            "api": config.api.model_copy(update={"port": 0}),
        }
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    runtime = HubRuntime(config)
    clients: list[tuple[SubscriberClient, threading.Thread]] = []
    stop = threading.Event()
    publisher: Publisher | None = None
    checkpoints: CompactedTable | None = None
    try:
        say(f"· starting hub roles api + router (topic prefix {prefix!r}) …")
        runtime.start()
        runtime.wait_ready()
        sample = load_sample("mzj.dibao")
        members = build_members()
        subs = build_subscriptions(sample.resource.code)
        admin = kafka.admin_client(config.kafka.bootstrap_servers, config.kafka.client_config)
        schema_id = provision(runtime.state, admin, sample, members, subs)
        say(
            f"· catalogue: {sample.resource.name} ({sample.resource.department_name}), "
            f"schema id {schema_id}; {len(members)} parties, {len(subs)} subscriptions"
        )
        data = generate_records(records)
        source_file = out_dir / "input" / "dibao.jsonl"
        write_jsonl(source_file, data)

        recipients = [CONSUMER_DEPT[0]] + [s[0] for s in STREETS] + [c[0] for c in COMMUNITIES]
        for pid in recipients:
            member = members[pid]
            settings = SubscriberSettings(
                bootstrap_servers=config.kafka.bootstrap_servers,
                recipient=pid,
                api_url=runtime.api_url,
                token=member.token,
                private_key=member.private_key,
                topic_prefix=prefix,
                client_config=config.kafka.client_config,
            )
            client = SubscriberClient(settings, JsonlSink(out_dir / "received" / f"{pid}.jsonl"))
            thread = threading.Thread(
                target=client.run, args=(stop,), daemon=True, name=f"subscriber-{pid}"
            )
            thread.start()
            clients.append((client, thread))

        checkpoints = CompactedTable(
            config.kafka.bootstrap_servers,
            runtime.state.topics.connect_offsets,
            client_config=config.kafka.client_config,
        )
        checkpoints.start()
        publisher = Publisher(
            connector="mzj-dibao-file",
            bootstrap_servers=config.kafka.bootstrap_servers,
            topics=runtime.state.topics,
            resource=sample.resource,
            schema_id=schema_id,
            codec=runtime.state.registry.codec(schema_id),
            checkpoints=checkpoints,
            client_config=config.kafka.client_config,
            regions=PartyRegions(runtime.state.parties),
        )
        source = JsonlFileSource("mzj-dibao-file", source_file)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(source.connect(publisher.checkpoint()))
        valid = records
        expected_total = valid * 3  # each record: its community, its street, 人社局
        say(
            f"· publishing {len(data)} records ({len(data) - valid} invalid) at ~{rate}/s; "
            f"{expected_total} deliveries expected"
        )
        say(
            f"  {'t':>5} {'published':>10} {'delivered':>10} {'in/s':>7} {'out/s':>7} "
            f"{'e2e p50':>8}"
        )
        t_pub = time.monotonic()
        last = (t_pub, 0, 0)
        batch = max(1, rate // 10)
        done_publishing = False
        while True:
            if not done_publishing:
                chunk = loop.run_until_complete(source.read(batch))
                if chunk:
                    publisher.publish(chunk)
                else:
                    done_publishing = True
                    loop.run_until_complete(source.close())
                    loop.close()
                time.sleep(0.1)
            else:
                time.sleep(0.2)
            now = time.monotonic()
            delivered = sum(c.records for c, _ in clients)
            if now - last[0] >= 1.0 or (done_publishing and delivered >= expected_total):
                published = publisher.stats.published
                lat = [x for c, _ in clients for x in list(c.recent_latencies_ms)]
                p50 = f"{statistics.median(lat):.0f}ms" if lat else "-"
                say(
                    f"  {now - t_pub:>4.0f}s {published:>10} {delivered:>10} "
                    f"{(published - last[1]) / (now - last[0]):>7.0f} "
                    f"{(delivered - last[2]) / (now - last[0]):>7.0f} {p50:>8}"
                )
                last = (now, published, delivered)
            if done_publishing and delivered >= expected_total:
                break
            if now - t_pub > timeout:
                say("  ! timed out waiting for deliveries")
                break
        _shutdown(stop, clients, publisher, checkpoints)

        by_region: dict[str, int] = {}
        for r in data[:valid]:
            by_region[r["region_code"]] = by_region.get(r["region_code"], 0) + 1
        checks = []
        for pid in recipients:
            member = members[pid]
            pref = jurisdiction_prefix(member.party.region_code)
            expected = sum(n for code, n in by_region.items() if code.startswith(pref))
            tier = (
                "department"
                if pid == CONSUMER_DEPT[0]
                else "community"
                if member.party.is_grassroots
                else "street"
            )
            checks.append(
                verify_sink(
                    out_dir / "received" / f"{pid}.jsonl",
                    member,
                    expected,
                    member.party.is_grassroots,
                    tier,
                )
            )
        rejected = read_dead_letters(config, runtime.state.topics.dlq("mzj"))
        say("")
        say(
            f"  {'recipient':<20} {'tier':<10} {'expected':>8} {'received':>8} "
            f"{'own rows':>8} {'masked':>6} {'p50':>6} {'p99':>6}  result"
        )
        for c in checks:
            say(
                f"  {c.recipient:<20} {c.tier:<10} {c.expected:>8} {c.received:>8} "
                f"{'yes' if c.own_rows_only else 'NO':>8} {'yes' if c.masked else 'no':>6} "
                f"{c.p50_ms:>4.0f}ms {c.p99_ms:>4.0f}ms  {'ok' if c.ok else 'FAIL'}"
            )
        say(
            f"  dead letters kept in {runtime.state.topics.dlq('mzj')}: "
            f"{sum(rejected.values())} {dict(rejected)}"
        )
        all_ok = all(c.ok for c in checks) and sum(rejected.values()) == len(data) - valid
        say(
            f"\n{'✔ isolation and masking hold' if all_ok else '✘ demo checks FAILED'}; "
            f"total {time.monotonic() - started:.1f}s; received records in {out_dir}/received/"
        )
        if keep_running:
            say(
                f"· --keep-running: api at {runtime.api_url} "
                "(/metrics, /registry/subjects, /openapi.json); Ctrl-C stops"
            )
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0 if all_ok else 1
    finally:
        _shutdown(stop, clients, publisher, checkpoints)
        runtime.stop()
        if local is not None and not keep_running:
            say("· stopping the local Kafka started for the demo")
            local.down()
