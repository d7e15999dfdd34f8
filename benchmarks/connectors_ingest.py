"""Connector ingest vs raw produce, on the same broker, in one run.

The same 低保 records enter Kafka four ways:

- **raw (pre-encoded)**: ``Producer.produce`` of Confluent-framed Avro bytes encoded before
  the clock starts — the client's ceiling, no per-record Python work;
- **raw (encode + produce)**: a plain Python loop that encodes each record (Avro, framing)
  and produces it with a record-id header — what a department's own script would do;
- **HTTP source**: ``govhub connector run`` with ``type = "http"`` in its own process, and a
  load client in this process posting NDJSON batches (a few requests in flight), clock from
  the first request to the last answer (answers come after Kafka acknowledged);
- **file source**: ``type = "file"`` on a GBK CSV with Chinese headers, from the first read
  to the last acknowledged batch.

Both connectors validate every record against the catalogue's quality rules and the schema,
encode, produce with ``acks=all``, and checkpoint each batch. The **publisher alone**
(``Publisher.publish`` on ready records, batch after batch, no source) shows what the
shared publish path costs by itself. Then a **big file** run: the file connector as a
process on a generated CSV of ``--big-mb`` megabytes (1024 for the 1 GB figure), reporting
its peak RSS.

``--repeat N`` measures everything N times on the same broker and reports the median and
the range of each ratio (the machine is shared; one run says little).

    python benchmarks/connectors_ingest.py [--records 100000] [--repeat 3] [--big-mb 1024]
        [--bootstrap H:P]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import csv
import datetime
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

from connectors.base import Source, SourceRecord
from connectors.publisher import Publisher
from connectors.registry import default_registry
from connectors.runner import ConnectorRunner
from connectors.spec import load_spec
from hub import kafka
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.model import Resource
from hub.catalogue.quality import id_card_check_char
from hub.catalogue.samples import load_sample
from hub.config import isolated_config
from hub.controlstate import CompactedTable
from hub.demo.world import COMMUNITIES
from hub.localkafka import LocalKafka, find_free_base_port
from hub.parties.model import Party, PartyKind, hash_token, new_token
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec
from hub.state import ControlState
from hub.topics import COMPACTED, Topics, ensure_resource_topics, ensure_topics

RESULTS = Path(__file__).parent / "results"
BATCH = 5000  # connector batch_size
POST_RECORDS = 1000  # records per HTTP request
IN_FLIGHT = 4  # concurrent HTTP requests of the load client
COLUMNS = {
    "身份证号": "id_card",
    "姓名": "name",
    "区划代码": "region_code",
    "保障人数": "household_size",
    "救助金额": "amount",
    "核定日期": "approved_on",
    "低保类别": "category",
    "家庭住址": "address",
}
TYPES = {"household_size": "int", "amount": "decimal", "approved_on": "date"}


def rows(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """Valid rows with unique id cards (a birth date per row, cycling over 60 years)."""
    base = datetime.date(1940, 1, 1)
    for i in range(start, start + count):
        birth = base + datetime.timedelta(days=i % 21_900)
        first17 = f"110105{birth:%Y%m%d}{i // 21_900 % 1000:03d}"
        yield {
            "id_card": first17 + id_card_check_char(first17),
            "name": f"张{i % 9973}",
            "region_code": f"11010500{1 + i % 2}00{1 + i % 2}",
            "household_size": 1 + i % 5,
            "amount": f"{600 + i % 900}.50",
            "approved_on": (datetime.date(2026, 1, 1) + datetime.timedelta(i % 300)).isoformat(),
            "category": "URBAN" if i % 3 else "RURAL",
            "address": f"北京市朝阳区建外街道{i % 500}号",
        }


# -- the hub side: a provisioned resource, no router -------------------------------------


@dataclass
class Bench:
    bootstrap: str
    topics: Topics
    resource: Resource
    codec: AvroCodec
    schema_id: int
    token: str
    tmp: Path

    @property
    def source_topic(self) -> str:
        return self.topics.source(self.resource.department, self.resource.code)

    def connector_file(
        self, name: str, ctype: str, source: Mapping[str, Any], **extra: Any
    ) -> Path:
        doc: dict[str, Any] = {
            "connector": {
                "name": name,
                "type": ctype,
                "resource": self.resource.code,
                "batch_size": BATCH,
                "poll_interval_s": 0.01,
                **extra,
            },
            "kafka": {"bootstrap_servers": self.bootstrap, "topic_prefix": self.topics.prefix},
            "source": dict(source),
        }
        path = self.tmp / f"{name}.yaml"
        path.write_text(json.dumps(doc, ensure_ascii=False))  # JSON is YAML
        return path


def provision(bootstrap: str, tmp: Path) -> tuple[Bench, ControlState]:
    topics = Topics(f"bench{uuid.uuid4().hex[:6]}.")
    admin = kafka.admin_client(bootstrap)
    ensure_topics(admin, {t: (1, COMPACTED) for t in topics.control})
    state = ControlState(isolated_config(bootstrap, topics.prefix, tmp / "state"))
    state.start()
    sample = load_sample("mzj.dibao")
    resource = sample.resource
    schema_id = state.registry.register(resource.subject, sample.schema_json)
    state.put_resource(resource)
    ensure_resource_topics(admin, topics, resource.department, resource.code)
    token = new_token()
    state.put_party(
        Party(
            id=resource.department,
            name=resource.department_name,
            kind=PartyKind.DEPARTMENT,
            region_code="110105000000",
            token_hash=hash_token(token),
        )
    )
    for pid, name, region, _ in COMMUNITIES:  # the region codes records may carry
        state.put_party(Party(id=pid, name=name, kind=PartyKind.UNIT, region_code=region))
    codec = state.registry.codec(schema_id)
    return Bench(bootstrap, topics, resource, codec, schema_id, token, tmp), state


# -- raw baselines -----------------------------------------------------------------------


def _produce(producer: Any, topic: str, value: bytes, key: bytes, headers: list[Any]) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


def raw_preencoded(bench: Bench, records: Sequence[dict[str, Any]]) -> float:
    encoded = [
        (
            frame(bench.schema_id, bench.codec.encode(bench.codec.from_json(r))),
            r["id_card"].encode(),
        )
        for r in records
    ]
    producer = kafka.producer(bench.bootstrap, "bench-raw-bytes")
    started = time.perf_counter()
    for i, (value, key) in enumerate(encoded):
        _produce(producer, bench.source_topic, value, key, [("govhub-record-id", b"raw:%d" % i)])
    producer.flush(120)
    return len(records) / (time.perf_counter() - started)


def raw_encode(bench: Bench, records: Sequence[dict[str, Any]]) -> float:
    codec, schema_id, topic = bench.codec, bench.schema_id, bench.source_topic
    producer = kafka.producer(bench.bootstrap, "bench-raw-encode")
    started = time.perf_counter()
    for i, r in enumerate(records):
        value = frame(schema_id, codec.encode(codec.from_json(r)))
        _produce(producer, topic, value, r["id_card"].encode(), [("govhub-record-id", b"r:%d" % i)])
    producer.flush(120)
    return len(records) / (time.perf_counter() - started)


# -- the publisher alone -----------------------------------------------------------------


def publisher_alone(bench: Bench, records: Sequence[dict[str, Any]], run: int = 0) -> float:
    """``Publisher.publish`` batch after batch on ready records: admit, produce, confirm,
    checkpoint — no source, no overlap."""
    checkpoints = CompactedTable(bench.bootstrap, bench.topics.connect_offsets)
    parties = CompactedTable(bench.bootstrap, bench.topics.parties)
    checkpoints.start()
    parties.start()
    publisher = Publisher(
        connector=f"bench-publisher-{run}",
        bootstrap_servers=bench.bootstrap,
        topics=bench.topics,
        resource=bench.resource,
        schema_id=bench.schema_id,
        codec=bench.codec,
        checkpoints=checkpoints,
        regions=PartyRegions(parties),
    )
    try:
        ready = [SourceRecord(f"p:{i}", r, {"n": i}) for i, r in enumerate(records)]
        batches = [ready[i : i + BATCH] for i in range(0, len(ready), BATCH)]
        publisher.publish(batches[0])  # connects and learns the topic
        started = time.perf_counter()
        for batch in batches:
            publisher.publish(batch)
        return len(ready) / (time.perf_counter() - started)
    finally:
        publisher.close()
        checkpoints.stop()
        parties.stop()


# -- the file source, in process ---------------------------------------------------------


def write_csv(path: Path, records: Iterator[dict[str, Any]], limit_bytes: int | None = None) -> int:
    """A GBK CSV as departments export it; returns the number of rows written."""
    count = 0
    with path.open("wb") as f:
        head = io.StringIO()
        csv.writer(head, lineterminator="\r\n").writerow(["序号", *COLUMNS])
        f.write(head.getvalue().encode("gbk"))
        chunk = io.StringIO()
        out = csv.writer(chunk, lineterminator="\r\n")
        for r in records:
            count += 1
            d = datetime.date.fromisoformat(r["approved_on"])
            values = [r[c] for c in COLUMNS.values()]
            values[5] = f"{d.year}/{d.month}/{d.day}"
            out.writerow([count, *values])
            if count % 10_000 == 0:
                f.write(chunk.getvalue().encode("gbk"))
                chunk.seek(0)
                chunk.truncate()
                if limit_bytes is not None and f.tell() >= limit_bytes:
                    break
        f.write(chunk.getvalue().encode("gbk"))
    return count


class TimedSource(Source):
    """Wraps a source to time its first read and its last acknowledged batch."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name = inner.name
        self.first_read: float | None = None
        self.last_ack = 0.0
        self.acked = 0

    async def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        await self.inner.connect(checkpoint)

    async def read(self, max_records: int) -> list[SourceRecord]:
        if self.first_read is None:
            self.first_read = time.perf_counter()
        return await self.inner.read(max_records)

    async def ack(self, records: Sequence[SourceRecord]) -> None:
        await self.inner.ack(records)
        self.acked += len(records)
        self.last_ack = time.perf_counter()

    async def close(self) -> None:
        await self.inner.close()

    def lag(self) -> float | None:
        return self.inner.lag()


def file_source(bench: Bench, count: int, profile: Path | None, run: int = 0) -> float:
    drop = bench.tmp / f"drop-{run}"
    drop.mkdir()
    write_csv(bench.tmp / "dibao.csv.tmp", rows(count, 10_000_000))
    os.replace(bench.tmp / "dibao.csv.tmp", drop / "低保.csv")
    settings = {"folder": str(drop), "settle_s": 0, "columns": COLUMNS, "types": TYPES}
    spec = load_spec(
        bench.connector_file(f"bench-file-{run}", "file", settings, stop_when_idle=True),
        default_registry(),
    )
    timed = TimedSource(spec.type.factory(spec.name, spec.settings))
    runner = ConnectorRunner(spec, timed)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    asyncio.run(runner.run(asyncio.Event()))
    if profiler and profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").dump_stats(str(profile))
    assert timed.acked == count and timed.first_read is not None, timed.acked
    return count / (timed.last_ack - timed.first_read)


# -- the HTTP source, as a process, with a load client here ------------------------------


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}


async def _load(url: str, token: str, bodies: list[bytes]) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in enumerate(bodies):
        queue.put_nowait(item)
    accepted = 0

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while not queue.empty():
            n, body = queue.get_nowait()
            while True:
                async with http.post(
                    url, data=body, headers=headers | {"Idempotency-Key": f"b{n}"}
                ) as r:
                    if r.status == 200:
                        accepted += (await r.json())["accepted"]
                        break
                    if r.status not in (429, 503):
                        raise RuntimeError(f"HTTP {r.status}: {await r.text()}")
                    await asyncio.sleep(float(r.headers.get("Retry-After", "0.1")))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(IN_FLIGHT)))
        elapsed = time.perf_counter() - started
    expected = sum(body.count(b"\n") + 1 for body in bodies)
    assert accepted == expected, (accepted, expected)
    return expected / elapsed


def http_source(bench: Bench, count: int, run: int = 0) -> float:
    port = find_free_base_port(1)
    settings = {
        "port": port,
        "hub": {
            "resource": bench.resource.code,
            "bootstrap_servers": bench.bootstrap,
            "topic_prefix": bench.topics.prefix,
        },
    }
    config = bench.connector_file(f"bench-http-{run}", "http", settings)
    log = (bench.tmp / "http.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "connector", "run", str(config)],
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        records = list(rows(count, 20_000_000))
        bodies = [
            b"\n".join(orjson.dumps(r) for r in records[i : i + POST_RECORDS])
            for i in range(0, count, POST_RECORDS)
        ]
        return asyncio.run(_load(f"http://127.0.0.1:{port}/v1/records", bench.token, bodies))
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the HTTP connector exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError("the HTTP connector did not come up")


# -- the big file, as a process ----------------------------------------------------------


def big_file(bench: Bench, megabytes: int) -> dict[str, Any]:
    drop = bench.tmp / "big-drop"
    drop.mkdir()
    staging = bench.tmp / "big.csv.tmp"
    t0 = time.perf_counter()
    count = write_csv(staging, rows(10**9, 30_000_000), megabytes * 2**20)
    size = staging.stat().st_size
    print(f"  generated {size / 2**20:,.0f} MB, {count:,} rows in {time.perf_counter() - t0:.0f}s")
    os.replace(staging, drop / "big.csv")
    settings = {"folder": str(drop), "settle_s": 0, "columns": COLUMNS, "types": TYPES}
    config = bench.connector_file("bench-big", "file", settings, stop_when_idle=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "connector", "run", str(config)],
        env=_env(),
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    summary = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"big-file connector failed ({proc.returncode}): {summary[-2000:]}")
    shutil.rmtree(drop)  # done/ holds the file now
    return {
        "bytes": size,
        "rows": count,
        "seconds": round(elapsed, 1),
        "records_per_s": round(count / elapsed),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "connector_summary": summary.splitlines()[-1] if summary else "",
    }


# -- main --------------------------------------------------------------------------------


def measure(
    bench: Bench, records: Sequence[dict[str, Any]], run: int, profile: Path | None
) -> dict[str, float]:
    """One run of every path, on the same broker, one after the other."""
    n = len(records)
    raw_bytes = raw_preencoded(bench, records)
    print(f"raw produce, pre-encoded:      {raw_bytes:>9,.0f} records/s")
    raw = raw_encode(bench, records)
    print(f"raw produce, encode + produce: {raw:>9,.0f} records/s")
    alone = publisher_alone(bench, records, run)
    print(f"publisher alone:               {alone:>9,.0f} records/s = {alone / raw:.2f}x raw")
    http = http_source(bench, n, run)
    print(f"HTTP source (process + load):  {http:>9,.0f} records/s = {http / raw:.2f}x raw")
    file = file_source(bench, n, profile, run)
    print(f"file source (GBK CSV):         {file:>9,.0f} records/s = {file / raw:.2f}x raw")
    return {
        "raw_preencoded_records_per_s": raw_bytes,
        "raw_encode_records_per_s": raw,
        "publisher_alone_records_per_s": alone,
        "http_records_per_s": http,
        "file_records_per_s": file,
        "ratio_http_vs_raw": http / raw,
        "ratio_file_vs_raw": file / raw,
        "ratio_publisher_alone_vs_raw": alone / raw,
        "ratio_http_vs_raw_preencoded": http / raw_bytes,
        "ratio_file_vs_raw_preencoded": file / raw_bytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of every path (spread)")
    parser.add_argument("--big-mb", type=int, default=0, help="big-file run size (0: skip)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--profile", type=Path, help="write a cProfile of the file source here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="govhub-bench-connectors-"))
    local = None
    bootstrap = args.bootstrap
    if not bootstrap:
        local = LocalKafka(tmp / "kafka", base_port=find_free_base_port(1), heap_mb=1024)
        bootstrap = local.up()
    state = None
    try:
        bench, state = provision(bootstrap, tmp)
        records = list(rows(args.records))
        n = args.records
        print(f"{n:,} records per run; broker {bootstrap}; connector batch_size {BATCH}")
        runs = []
        for run in range(args.repeat):
            if args.repeat > 1:
                print(f"-- run {run + 1} of {args.repeat}")
            runs.append(measure(bench, records, run, args.profile if run == 0 else None))
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        result: dict[str, Any] = {
            "benchmark": "connectors_ingest",
            "records": n,
            "connector_batch_size": BATCH,
            "http": {"records_per_request": POST_RECORDS, "requests_in_flight": IN_FLIGHT},
            "runs_measured": len(runs),
            **{
                key: round(value, 3) if key.startswith("ratio") else round(value)
                for key, value in median.items()
            },
            "spread": {
                key: [round(min(r[key] for r in runs), 3), round(max(r[key] for r in runs), 3)]
                for key in median
                if key.startswith("ratio")
            },
            "runs": [
                {k: round(v, 3) if k.startswith("ratio") else round(v) for k, v in r.items()}
                for r in runs
            ],
            "goals": {"http_vs_raw": 0.5, "file_vs_raw": 0.7},
        }
        if len(runs) > 1:
            for key in ("ratio_http_vs_raw", "ratio_file_vs_raw"):
                low, high = result["spread"][key]
                print(f"{key}: median {median[key]:.2f}, range {low:.2f}-{high:.2f}")
        if args.big_mb:
            print(f"big file: {args.big_mb} MB CSV through `govhub connector run` ...")
            big = big_file(bench, args.big_mb)
            print(
                f"  {big['rows']:,} rows in {big['seconds']}s = {big['records_per_s']:,}/s, "
                f"peak RSS {big['peak_rss_mb']} MB"
            )
            result["big_file"] = big
        result["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count()}
        result["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / "connectors_ingest.json"
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"results: {out}")
        return 0
    finally:
        if state is not None:
            state.stop()
        if local is not None:
            local.down()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
