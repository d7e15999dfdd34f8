"""Exchange path vs a raw consume→produce loop, on the same broker, in one run.

Both read the same pre-loaded source topic. The baseline copies every record to an output
topic with a batched Python loop (no policy, no encryption, no transactions). The hub's
router delivers each record to 4 recipients (department, district, street, community:
masked for the community), encrypted per recipient, inside Kafka transactions. The figure
is the ratio of source records per second, hub / raw.

    python benchmarks/exchange_vs_raw.py [--records 50000] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import TopicPartition
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

from hub import kafka
from hub.catalogue.samples import load_sample
from hub.config import isolated_config
from hub.demo.world import build_members, build_subscriptions, generate_records, provision
from hub.localkafka import LocalKafka, find_free_base_port
from hub.registry.framing import frame
from hub.runtime import HubRuntime
from hub.subscriptions.model import Subscription
from hub.topics import ensure_topics

RESULTS = Path(__file__).parent / "results"


def preload(bootstrap: str, topic: str, schema_id: int, codec, rows, count: int) -> None:  # type: ignore[no-untyped-def]
    producer = kafka.producer(bootstrap, "bench-preload", linger_ms=20, batch_size=1_000_000)
    encoded = [
        (
            frame(schema_id, codec.encode(codec.from_json(r))),
            r["region_code"].encode(),
            r["id_card"].encode(),
        )
        for r in rows
    ]
    now = str(int(time.time() * 1000)).encode()
    for i in range(count):
        value, region, key = encoded[i % len(encoded)]
        while True:
            try:
                producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=[
                        ("govhub-region", region),
                        ("govhub-record-id", f"bench:{i}".encode()),
                        ("govhub-ingested-at", now),
                    ],
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def raw_loop(bootstrap: str, source: str, count: int) -> float:
    out = f"bench-raw-out-{uuid.uuid4().hex[:6]}"
    ensure_topics(kafka.admin_client(bootstrap), {out: (3, {})})
    consumer = kafka.consumer(bootstrap, f"bench-raw-{uuid.uuid4().hex}", "bench-raw")
    producer = kafka.producer(bootstrap, "bench-raw", linger_ms=5, batch_size=1_000_000)
    consumer.subscribe([source])
    seen = 0
    started = None
    while seen < count:
        for msg in consumer.consume(2000, 1.0):
            if msg.error() is not None:
                continue
            if started is None:
                started = time.perf_counter()
            while True:
                try:
                    producer.produce(out, value=msg.value(), key=msg.key(), headers=msg.headers())
                    break
                except BufferError:
                    producer.poll(0.05)
            seen += 1
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return count / elapsed


def hub_router(runtime: HubRuntime, bootstrap: str, source: str, count: int) -> float:
    group = runtime.config.router.group_id
    probe = kafka.consumer(bootstrap, group, "bench-probe")
    meta = probe.list_topics(source, timeout=10)
    tps = [TopicPartition(source, p) for p in meta.topics[source].partitions]
    started = None
    while True:
        committed = probe.committed(tps, timeout=10)
        done = sum(max(tp.offset, 0) for tp in committed)
        if started is None and done > 0:
            started = (time.perf_counter(), done)
        if done >= count:
            break
        time.sleep(0.05)
    probe.close()
    assert started is not None
    return (count - started[1]) / (time.perf_counter() - started[0])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args()
    local = None
    bootstrap = args.bootstrap
    tmp = Path(tempfile.mkdtemp(prefix="govhub-bench-"))
    if not bootstrap:
        local = LocalKafka(tmp / "kafka", base_port=find_free_base_port())
        bootstrap = local.up()
    try:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        config = isolated_config(bootstrap, prefix, tmp / "state")
        sample = load_sample("mzj.dibao")
        members = build_members()
        subs = build_subscriptions(sample.resource.code)
        subs.append(
            Subscription(
                id="sub-chaoyang",
                resource=sample.resource.code,
                subscriber="chaoyang",
                jurisdiction="110105000000",
                purpose="区级统筹",
            )
        )
        # Provision with an api-only runtime, preload, then start the router on the backlog.
        setup = HubRuntime(config, roles=("api",))
        setup.start()
        schema_id = provision(setup.state, kafka.admin_client(bootstrap), sample, members, subs)
        source = setup.state.topics.source(sample.resource.department, sample.resource.code)
        codec = setup.state.registry.codec(schema_id)
        setup.stop()
        rows = generate_records(2000, invalid=0)
        t0 = time.perf_counter()
        preload(bootstrap, source, schema_id, codec, rows, args.records)
        print(f"preloaded {args.records} records in {time.perf_counter() - t0:.1f}s")

        raw_rate = raw_loop(bootstrap, source, args.records)
        print(f"raw consume→produce loop: {raw_rate:,.0f} records/s")

        runtime = HubRuntime(config, roles=("router",))
        runtime.start()
        hub_rate = hub_router(runtime, bootstrap, source, args.records)
        runtime.stop()
        print(
            f"hub router (4 recipients/record, encrypted, transactional): "
            f"{hub_rate:,.0f} records/s = {hub_rate * 4:,.0f} deliveries/s"
        )
        ratio = hub_rate / raw_rate
        print(f"ratio hub/raw: {ratio:.2f}x")
        result = {
            "benchmark": "exchange_vs_raw",
            "records": args.records,
            "recipients_per_record": 4,
            "raw_records_per_s": round(raw_rate),
            "hub_records_per_s": round(hub_rate),
            "ratio": round(ratio, 3),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "exchange_vs_raw.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        if local is not None:
            local.down()


if __name__ == "__main__":
    raise SystemExit(main())
