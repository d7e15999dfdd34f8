"""PostgreSQL source vs raw ``Producer.produce`` of the same records, on one broker, in one run.

The raw baseline produces the records already encoded (Confluent-framed Avro with the
``govhub-*`` headers) with the connector's producer settings and one flush at the end:
what Kafka alone can take from one Python process. The PostgreSQL source then publishes the
same rows from a table through the connector runner: keyset pages from PostgreSQL, JSON to
Avro conversion, quality checks, produce, a flush per batch and a checkpoint per batch.
The figure is records per second and the ratio source / raw.

    python benchmarks/connectors_postgres.py [--records 50000] [--batch-size 2000]
        [--repeat 3] [--bootstrap HOST:PORT] [--dsn postgresql://...]

``--repeat N`` measures both N times (a fresh connector each time) and reports the median
and the range of the ratio.

Without ``--bootstrap`` a local Kafka starts from the jar cache; without ``--dsn`` a private
PostgreSQL cluster starts (``scripts/postgres.sh install`` provides the server).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.pg_fixtures when run as a script

import asyncpg  # noqa: E402
from machine import cpu_model  # noqa: E402 - benchmarks/machine.py, next to the script

from connectors import builtin_postgres  # noqa: E402
from connectors.base import Source, SourceRecord  # noqa: E402
from connectors.registry import ConnectorRegistry  # noqa: E402
from connectors.runner import ConnectorRunner  # noqa: E402
from connectors.spec import load_spec  # noqa: E402
from hub import kafka  # noqa: E402
from hub.catalogue.samples import load_sample  # noqa: E402
from hub.config import isolated_config  # noqa: E402
from hub.demo.world import build_members, build_subscriptions, generate_records  # noqa: E402
from hub.demo.world import provision as provision_world  # noqa: E402
from hub.localkafka import LocalKafka, find_free_base_port  # noqa: E402
from hub.registry.framing import frame  # noqa: E402
from hub.runtime import HubRuntime  # noqa: E402
from hub.topics import ensure_topics  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FIELDS = (
    "id_card",
    "name",
    "region_code",
    "household_size",
    "amount",
    "approved_on",
    "category",
    "address",
)


class TimedSource(Source):
    """Delegates to the real source; notes the first read and the last acknowledgement."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name = inner.name
        self.first_read: float | None = None
        self.last_ack = 0.0
        self.reading = 0.0  # seconds spent inside read(): PostgreSQL and conversion

    async def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        await self.inner.connect(checkpoint)

    async def read(self, max_records: int) -> list[SourceRecord]:
        started = time.perf_counter()
        if self.first_read is None:
            self.first_read = started
        records = await self.inner.read(max_records)
        self.reading += time.perf_counter() - started
        return records

    async def ack(self, records: Sequence[SourceRecord]) -> None:
        await self.inner.ack(records)
        self.last_ack = time.perf_counter()

    async def close(self) -> None:
        await self.inner.close()


async def load_table(dsn: str, rows: list[dict[str, Any]], count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_dibao; CREATE TABLE bench_dibao (id bigint PRIMARY KEY, "
            "id_card text, name text, region_code text, household_size int, "
            "amount numeric(10,2), approved_on date, category text, address text, "
            "updated_at timestamptz NOT NULL DEFAULT now()); "
        )
        records = [
            (
                i,
                *(rows[i % len(rows)][f] for f in FIELDS[:4]),
                Decimal(rows[i % len(rows)]["amount"]),
                datetime.date.fromisoformat(rows[i % len(rows)]["approved_on"]),
                rows[i % len(rows)]["category"],
                rows[i % len(rows)]["address"],
            )
            for i in range(count)
        ]
        await conn.copy_records_to_table("bench_dibao", records=records, columns=("id", *FIELDS))
        await conn.execute("CREATE INDEX ON bench_dibao (updated_at, id); ANALYZE bench_dibao")
    finally:
        await conn.close()


def raw_produce(bootstrap: str, topic: str, encoded: list[tuple[bytes, bytes, bytes]]) -> float:
    producer = kafka.producer(bootstrap, "bench-raw")
    now = str(int(time.time() * 1000)).encode()
    started = time.perf_counter()
    for i, (value, region, key) in enumerate(encoded):
        headers: list[tuple[str, str | bytes | None]] = [
            ("govhub-region", region),
            ("govhub-record-id", f"bench:{i}".encode()),
            ("govhub-ingested-at", now),
            ("govhub-trace", uuid.uuid4().hex.encode()),
        ]
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - started
    assert remaining == 0, f"{remaining} raw records not acknowledged"
    return len(encoded) / elapsed


async def postgres_source(spec_path: Path) -> tuple[int, float, float]:
    registry = ConnectorRegistry()
    builtin_postgres.register(registry)
    spec = load_spec(spec_path, registry)
    source = TimedSource(spec.type.factory(spec.name, spec.settings))
    runner = ConnectorRunner(spec, source)
    await runner.run(asyncio.Event())
    assert runner.publisher is not None and source.first_read is not None
    published = runner.publisher.stats.published
    elapsed = source.last_ack - source.first_read
    return published, published / elapsed, source.reading / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of both paths (spread)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--dsn", default=os.environ.get("PG_BENCH_DSN"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="govhub-bench-pg-"))
    local = pg = None
    bootstrap, dsn = args.bootstrap, args.dsn
    try:
        if not bootstrap:
            local = LocalKafka(tmp / "kafka", base_port=find_free_base_port())
            bootstrap = local.up()
        if not dsn:
            from tests.pg_fixtures import start_private_server

            pg = start_private_server()
            dsn = pg.dsn()
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        config = isolated_config(bootstrap, prefix, tmp / "state")
        sample = load_sample("mzj.dibao")
        setup = HubRuntime(config, roles=("api",))
        setup.start()
        admin = kafka.admin_client(bootstrap)
        schema_id = provision_world(
            setup.state, admin, sample, build_members(), build_subscriptions(sample.resource.code)
        )
        codec = setup.state.registry.codec(schema_id)
        topics = setup.state.topics
        setup.stop()

        rows = generate_records(2000, invalid=0)
        asyncio.run(load_table(dsn, rows, args.records))
        encoded = []
        for i in range(args.records):
            row = rows[i % len(rows)]
            payload = frame(schema_id, codec.encode(codec.from_json(row)))
            encoded.append((payload, row["region_code"].encode(), row["id_card"].encode()))
        raw_topic = f"{prefix}bench-raw"
        ensure_topics(admin, {raw_topic: (3, {})})
        runs = []
        for run in range(args.repeat):
            raw_rate = raw_produce(bootstrap, raw_topic, encoded)
            print(f"raw Producer.produce: {raw_rate:,.0f} records/s")
            spec_path = tmp / f"pg-{run}.toml"
            spec_path.write_text(
                f"""
[connector]
name = "bench-pg-{run}"
type = "postgres"
resource = "dibao"
batch_size = {args.batch_size}
stop_when_idle = true

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"

[source]
dsn = "{dsn}"
table = "bench_dibao"
cursor_column = "updated_at"
columns = {{ {", ".join(f'{f} = "{f}"' for f in FIELDS)} }}
"""
            )
            published, pg_rate, read_share = asyncio.run(postgres_source(spec_path))
            assert published == args.records, f"published {published} of {args.records}"
            print(
                f"PostgreSQL source (batch {args.batch_size}, through the runner): "
                f"{pg_rate:,.0f} records/s ({read_share:.0%} of the time reading PostgreSQL)"
            )
            print(f"ratio PostgreSQL source / raw: {pg_rate / raw_rate:.2f}x")
            runs.append((raw_rate, pg_rate, read_share, pg_rate / raw_rate))
        print(f"(source topic {topics.source(sample.resource.department, sample.resource.code)})")
        ratios = [r[3] for r in runs]
        ratio = statistics.median(ratios)
        if len(runs) > 1:
            print(f"ratio: median {ratio:.2f}, range {min(ratios):.2f}-{max(ratios):.2f}")
        result = {
            "benchmark": "connectors_postgres",
            "records": args.records,
            "batch_size": args.batch_size,
            "runs_measured": len(runs),
            "raw_records_per_s": round(statistics.median(r[0] for r in runs)),
            "postgres_source_records_per_s": round(statistics.median(r[1] for r in runs)),
            "ratio": round(ratio, 3),
            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "postgres_read_share": round(statistics.median(r[2] for r in runs), 3),
            "runs": [
                {
                    "raw_records_per_s": round(raw),
                    "postgres_source_records_per_s": round(pg),
                    "ratio": round(rt, 3),
                    "postgres_read_share": round(share, 3),
                }
                for raw, pg, share, rt in runs
            ],
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "connectors_postgres.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        if pg is not None:
            pg.stop("immediate")
            if pg.folder is not None:
                shutil.rmtree(pg.folder, ignore_errors=True)
        if local is not None:
            local.down()


if __name__ == "__main__":
    raise SystemExit(main())
