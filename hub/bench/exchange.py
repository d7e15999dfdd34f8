"""``govhub bench exchange``: the router against a raw consume→produce loop.

One run, one broker, the same generated records for every figure:

- **baseline**: a raw Python loop, batched ``consume(n)`` → ``produce()`` of the records,
  nothing else (its own process);
- **hub**: the router (its own process) on the standard mix of :mod:`hub.bench.world`:
  each ~300-byte Avro record to 4 recipients under 3 views, masked for communities,
  AES-256-GCM, Kafka transactions;
- variants of the hub: frames not encrypted (``encryption_off_ratio``), at-least-once
  instead of transactions (``eos_ratio``), 10,000 against 10 subscribers
  (``subscribers_10k_ratio``);
- latency: records published at half of each one's measured maximum, the 99th percentile
  from publication to a read_committed consumer holding the record (for the hub: the
  districts' frames, opened and read entry by entry).

Throughput is source records per second, timed from the first to the last committed
transaction (the hub) or from the first record consumed to the last acknowledged (the
baseline), so process start and group joins are not counted for either.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from hub import kafka
from hub.bench import emit, run_arguments
from hub.bench.machine import machine
from hub.bench.world import BenchWorld, bench_resource, build_world, record_pool
from hub.config import HubConfig, isolated_config
from hub.crypto.frames import open_frame
from hub.crypto.keys import DataKeyRecord, unwrap_data_key
from hub.crypto.kms import LocalFileKms
from hub.localkafka import LocalKafka, find_free_base_port
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec
from hub.state import ControlState
from hub.topics import ensure_hub_topics, ensure_resource_topics, ensure_topics

log = logging.getLogger(__name__)

SOURCE_PARTITIONS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_arguments(parser, "smaller run (about 2 minutes)")
    parser.add_argument("--records", type=int, default=None, help="source records per run")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile the router (pyinstrument) during the main hub run; report to this file",
    )
    parser.add_argument(
        "--only",
        default="throughput,variants,scale,latency",
        help="comma-separated parts to run (throughput,variants,scale,latency)",
    )


# -- installations ---------------------------------------------------------------------------
@dataclass
class Installation:
    """One hub (its own topic prefix) with a world provisioned and a backlog preloaded."""

    config: HubConfig
    world: BenchWorld
    source: str
    schema_id: int
    pool: list[tuple[bytes, bytes, bytes]]  # (framed value, region header, key)
    records: int = 0


def provision(
    bootstrap: str,
    tmp: Path,
    world_args: dict[str, int],
    pool_size: int,
    world: Callable[..., BenchWorld] = build_world,
) -> Installation:
    """A hub with ``world(resource, **world_args)`` provisioned; ``pool_size`` distinct
    records to preload from."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    config = isolated_config(bootstrap, prefix, tmp / prefix.rstrip("."))
    admin = kafka.admin_client(bootstrap)
    state = ControlState(config)
    ensure_hub_topics(admin, state.topics, config.kafka.delivery_partitions, -1)
    state.start(60)
    try:
        sample = bench_resource()
        resource = sample.resource
        bench_world = world(resource.code, **world_args)
        schema_id = state.registry.register(resource.subject, sample.schema_json)
        state.put_resource(resource)
        ensure_resource_topics(
            admin, state.topics, resource.department, resource.code, partitions=SOURCE_PARTITIONS
        )
        state.put_parties(bench_world.parties)
        state.put_subscriptions(bench_world.subscriptions)
        codec = AvroCodec(sample.schema_json)
        pool = [
            (frame(schema_id, codec.encode(r)), r["region_code"].encode(), r["id_card"].encode())
            for r in record_pool(bench_world.communities, pool_size)
        ]
        source = state.topics.source(resource.department, resource.code)
    finally:
        state.stop()
    return Installation(config, bench_world, source, schema_id, pool)


def preload(inst: Installation, count: int) -> None:
    producer = kafka.producer(
        inst.config.kafka.bootstrap_servers, "bench-preload", linger_ms=20, batch_size=1_000_000
    )
    now = str(int(time.time() * 1000)).encode()
    base = inst.records
    pool = inst.pool
    for i in range(base, base + count):
        value, region, key = pool[i % len(pool)]
        headers: list[tuple[str, str | bytes | None]] = [
            ("govhub-region", region),
            ("govhub-record-id", b"bench:%d" % i),
            ("govhub-ingested-at", now),
        ]
        while True:
            try:
                producer.produce(inst.source, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("preload not acknowledged")
    inst.records += count


# -- processes ---------------------------------------------------------------------------------
def _toml(tree: dict[str, Any]) -> str:
    """A config tree as TOML: top-level values first, then one table per section."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in tree.items() if not isinstance(v, dict)]
    for section, values in tree.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _broker_pid(local: LocalKafka | None, bootstrap: str) -> int | None:
    """The broker's process, for its CPU time: the local broker's, else the process
    listening on the bootstrap port of this machine (None if it is elsewhere)."""
    if local is not None:
        return local.running_pid(local.layout.node_ids[0])
    try:
        port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


@contextmanager
def router_process(
    inst: Installation,
    tmp: Path,
    group: str,
    exactly_once: bool = True,
    plaintext: bool = False,
    profile: Path | None = None,
    index: int = 0,
) -> Iterator[subprocess.Popen[bytes]]:
    cfg = inst.config
    path = tmp / f"router-{group}-{index}.toml"
    path.write_text(
        _toml(
            {
                "kafka": {
                    "bootstrap_servers": cfg.kafka.bootstrap_servers,
                    "topic_prefix": cfg.kafka.topic_prefix,
                },
                "router": {
                    "group_id": group,
                    "transactional_id": f"{group}-txn-{index}",
                    "exactly_once": exactly_once,
                },
                "crypto": {"kek_file": str(cfg.crypto.kek_file)},
                "metrics": {"port": 0},
                "state_dir": str(cfg.state_dir),
            }
        )
    )
    command = [sys.executable, "-m", "hub.bench.procs", "router", "--config", str(path)]
    if plaintext:
        command.append("--plaintext")
    if profile is not None:
        command += ["--profile", str(profile)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"router process did not start: {line!r}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_router(
    inst: Installation,
    tmp: Path,
    broker_pid: int | None,
    exactly_once: bool = True,
    plaintext: bool = False,
    profile: Path | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    """Route the whole backlog with a fresh consumer group of ``processes`` routers; rate
    between the first and the last commit seen. With ``profile``, the router process
    profiles itself (pyinstrument) and writes the report there when it stops."""
    group = f"{inst.config.kafka.topic_prefix}router-{uuid.uuid4().hex[:6]}"
    probe = kafka.consumer(inst.config.kafka.bootstrap_servers, group, "bench-probe")
    tps = [TopicPartition(inst.source, p) for p in range(SOURCE_PARTITIONS)]
    total = inst.records
    # The probe finds the group coordinator before the router starts, so its first look
    # at the committed offsets is not late.
    probe.committed(tps, timeout=10)
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                router_process(inst, tmp, group, exactly_once, plaintext, profile, index=i)
            )
            for i in range(processes)
        ]
        rss_peak = 0
        first: tuple[float, int, float | None, float | None] | None = None
        last = first
        commits = 0
        previous = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = sum(max(tp.offset, 0) for tp in probe.committed(tps, timeout=10))
            now = time.perf_counter()
            if done != previous:
                commits += 1
                previous = done
                sample = (now, done, _cpu_sum([p.pid for p in procs]), _cpu(broker_pid))
                rss_peak = max(rss_peak, sum(_rss_bytes(p.pid) for p in procs))
                if first is None:
                    first = sample
                last = sample
            if done >= total:
                break
            time.sleep(0.01)
    probe.close()
    # The rate is taken between the first and the last commit seen, so the first
    # transaction (and the group join before it) is not counted; the window must hold
    # most of the backlog for the figure to mean something.
    if first is None or last is None or last[1] < total or (last[1] - first[1]) < total // 2:
        raise RuntimeError(
            f"router run too short to time: {previous}/{total} records, {commits} commits "
            "seen; use more --records"
        )
    seconds = last[0] - first[0]
    records = last[1] - first[1]
    result: dict[str, Any] = {
        "records": records,
        "seconds": round(seconds, 3),
        "records_per_s": records / seconds,
        "commits": commits,
        "processes": processes,
        "rss_bytes": rss_peak,
    }
    if first[2] is not None and last[2] is not None:
        result["cpu_hub"] = round((last[2] - first[2]) / seconds, 3)
    if first[3] is not None and last[3] is not None:
        result["cpu_broker"] = round((last[3] - first[3]) / seconds, 3)
    return result


def _cpu(pid: int | None) -> float | None:
    return None if pid is None else _cpu_seconds(pid)


def _cpu_sum(pids: list[int]) -> float | None:
    values = [_cpu_seconds(pid) for pid in pids]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _rss_bytes(pid: int) -> int:
    """A process's resident memory now (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure_raw(inst: Installation, out: str, broker_pid: int | None) -> dict[str, Any]:
    cfg = inst.config
    ensure_topics(kafka.admin_client(cfg.kafka.bootstrap_servers), {out: (SOURCE_PARTITIONS, {})})
    cpu0 = _cpu(broker_pid)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.bench.procs",
            "raw",
            "--bootstrap",
            cfg.kafka.bootstrap_servers,
            "--source",
            inst.source,
            "--out",
            out,
            "--count",
            str(inst.records),
            "--group",
            f"bench-raw-{uuid.uuid4().hex[:8]}",
        ],
        check=True,
        stdout=subprocess.PIPE,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    cpu1 = _cpu(broker_pid)
    result: dict[str, Any] = orjson.loads(proc.stdout.splitlines()[-1])
    result["cpu_hub"] = round(result["cpu_seconds"] / result["seconds"], 3)
    if cpu0 is not None and cpu1 is not None:
        # Broker CPU over the whole process run (start-up included): an upper bound.
        result["cpu_broker"] = round((cpu1 - cpu0) / wall, 3)
    return result


# -- latency -----------------------------------------------------------------------------------
class Pacer(threading.Thread):
    """Publishes pool records at a fixed rate, stamping the ingest time in each."""

    def __init__(self, inst: Installation, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.inst, self.rate, self.seconds = inst, rate, seconds
        self.sent = 0

    def run(self) -> None:
        inst = self.inst
        producer = kafka.producer(
            inst.config.kafka.bootstrap_servers, "bench-pacer", linger_ms=1, batch_size=1_000_000
        )
        start = time.perf_counter()
        base = inst.records
        pool = inst.pool
        while (elapsed := time.perf_counter() - start) < self.seconds:
            due = int(elapsed * self.rate)
            now = b"%d" % int(time.time() * 1000)
            while self.sent < due:
                i = base + self.sent
                value, region, key = pool[i % len(pool)]
                headers: list[tuple[str, str | bytes | None]] = [
                    ("govhub-region", region),
                    ("govhub-record-id", b"bench:%d" % i),
                    ("govhub-ingested-at", now),
                ]
                try:
                    producer.produce(inst.source, value=value, key=key, headers=headers)
                except BufferError:
                    producer.poll(0.01)
                    continue
                self.sent += 1
            producer.poll(0)
            time.sleep(0.002)
        producer.flush(60)
        inst.records += self.sent


def _p99(values: list[float]) -> float:
    if not values:
        raise RuntimeError("no latency samples")
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def _collect(consumer: Any, until: float, handle: Any) -> None:
    while time.monotonic() < until:
        for msg in consumer.consume(1000, 0.1):
            if msg.error() is None:
                handle(msg, time.time() * 1000)


def latency_raw(inst: Installation, rate: float, seconds: float, warmup: float) -> float:
    return _p99(latency_raw_samples(inst, rate, seconds, warmup))


def latency_raw_samples(
    inst: Installation, rate: float, seconds: float, warmup: float
) -> list[float]:
    """Milliseconds from publication to a read_committed reader of the raw loop's output,
    for records published at ``rate`` after ``warmup`` seconds."""
    cfg = inst.config
    bootstrap = cfg.kafka.bootstrap_servers
    out = f"{cfg.kafka.topic_prefix}bench-raw-lat"
    ensure_topics(kafka.admin_client(bootstrap), {out: (SOURCE_PARTITIONS, {})})
    group = f"bench-raw-{uuid.uuid4().hex[:8]}"
    # Start the loop at the end of the backlog: only paced records count.
    _commit_end(bootstrap, group, inst.source)
    reader = _reader(bootstrap, out, latest=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.bench.procs",
            "raw",
            "--bootstrap",
            bootstrap,
            "--source",
            inst.source,
            "--out",
            out,
            "--group",
            group,
            "--forever",
        ],
        stdout=subprocess.DEVNULL,
    )
    samples: list[float] = []
    cutoff = time.time() * 1000 + warmup * 1000

    def handle(msg: Any, now_ms: float) -> None:
        for name, raw in msg.headers() or ():
            if name == "govhub-ingested-at":
                ingested = int(raw)
                if ingested >= cutoff:
                    samples.append(now_ms - ingested)

    try:
        time.sleep(3)  # group join
        pacer = Pacer(inst, rate, seconds)
        pacer.start()
        _collect(reader, time.monotonic() + seconds + 3, handle)
        pacer.join()
    finally:
        proc.terminate()
        proc.wait(30)
        reader.close()
    return samples


def latency_hub(inst: Installation, tmp: Path, rate: float, seconds: float, warmup: float) -> float:
    return _p99(latency_hub_samples(inst, tmp, rate, seconds, warmup))


def latency_hub_samples(
    inst: Installation, tmp: Path, rate: float, seconds: float, warmup: float
) -> list[float]:
    """Milliseconds from publication (the ingest stamp) to a read_committed reader holding
    the record opened from a district's frame, for records published at ``rate``."""
    cfg = inst.config
    bootstrap = cfg.kafka.bootstrap_servers
    group = f"{cfg.kafka.topic_prefix}router-lat-{uuid.uuid4().hex[:6]}"
    _commit_end(bootstrap, group, inst.source)
    state = ControlState(cfg)
    state.start(60)
    kms = LocalFileKms(cfg.crypto.kek_file, create=True)
    districts = {p.id for p in inst.world.parties if p.id.startswith("d")}
    keys: dict[bytes, bytes] = {}

    def key_for(key_id: bytes) -> bytes:
        key = keys.get(key_id)
        if key is None:
            deadline = time.monotonic() + 10
            while key is None and time.monotonic() < deadline:
                for row in state.keys.values():
                    record = DataKeyRecord.from_json(orjson.dumps(row))
                    if record.key_id == key_id:
                        key = keys[key_id] = unwrap_data_key(kms, record)
                        break
                else:
                    state.keys.catch_up()
            if key is None:
                raise RuntimeError("key record not found")
        return key

    samples: list[float] = []
    cutoff = time.time() * 1000 + warmup * 1000

    def handle(msg: Any, now_ms: float) -> None:
        recipient = (msg.key() or b"").decode()
        if recipient not in districts:
            return
        _, entries = open_frame(msg.value(), recipient, key_for)
        for entry in entries:
            if entry.ingested_at_ms >= cutoff:
                samples.append(now_ms - entry.ingested_at_ms)

    reader = _reader(bootstrap, state.topics.delivery, latest=True)
    try:
        with router_process(inst, tmp, group):
            time.sleep(3)  # group join
            pacer = Pacer(inst, rate, seconds)
            pacer.start()
            _collect(reader, time.monotonic() + seconds + 3, handle)
            pacer.join()
    finally:
        reader.close()
        state.stop()
    return samples


def _commit_end(bootstrap: str, group: str, topic: str) -> None:
    consumer = kafka.consumer(bootstrap, group, "bench-offsets")
    tps = []
    for p in range(SOURCE_PARTITIONS):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        tps.append(TopicPartition(topic, p, high))
    consumer.commit(offsets=tps, asynchronous=False)
    consumer.close()


def _reader(bootstrap: str, topic: str, latest: bool) -> Any:
    consumer = kafka.consumer(
        bootstrap,
        f"bench-reader-{uuid.uuid4().hex[:8]}",
        "bench-reader",
        auto_offset_reset="latest" if latest else "earliest",
        isolation_level="read_committed",
        fetch_wait_max_ms=5,
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 15
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.consume(1, 0.1)
    return consumer


# -- the run -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    records = args.records or (250_000 if args.quick else 600_000)
    scale_records = records
    latency_s = 8.0 if args.quick else 20.0
    tmp = Path(tempfile.mkdtemp(prefix="govhub-bench-"))
    local = None
    bootstrap = args.bootstrap
    if not bootstrap:
        local = LocalKafka(tmp / "kafka", base_port=find_free_base_port())
        bootstrap = local.up()
    result: dict[str, Any] = {
        "benchmark": "exchange",
        "quick": bool(args.quick),
        "records": records,
        "mix": "1,000 communities, 100 streets, 10 districts, 5 departments; "
        "4 recipients and 3 views per record; AES-256-GCM; transactions",
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    started = time.perf_counter()
    try:
        broker_pid = _broker_pid(local, bootstrap)
        std = provision(bootstrap, tmp, {}, 5000)
        preload(std, records)
        if parts & {"throughput", "variants", "latency"}:
            raw = measure_raw(std, f"{std.config.kafka.topic_prefix}bench-raw-out", broker_pid)
            _say(f"baseline raw loop: {raw['records_per_s']:,.0f} records/s")
            hub = measure_router(std, tmp, broker_pid, profile=args.profile)
            _say(f"hub router: {hub['records_per_s']:,.0f} records/s")
            result.update(
                baseline_records_per_s=round(raw["records_per_s"]),
                hub_records_per_s=round(hub["records_per_s"]),
                ratio=round(hub["records_per_s"] / raw["records_per_s"], 3),
                deliveries_per_s=round(hub["records_per_s"] * std.world.recipients_per_record),
                cpu_hub=hub.get("cpu_hub"),
                cpu_broker=hub.get("cpu_broker"),
                baseline_cpu=raw.get("cpu_hub"),
                baseline_cpu_broker=raw.get("cpu_broker"),
            )
        if "variants" in parts:
            plain = measure_router(std, tmp, broker_pid, plaintext=True)
            alo = measure_router(std, tmp, broker_pid, exactly_once=False)
            result.update(
                hub_unencrypted_records_per_s=round(plain["records_per_s"]),
                encryption_off_ratio=round(hub["records_per_s"] / plain["records_per_s"], 3),
                hub_at_least_once_records_per_s=round(alo["records_per_s"]),
                eos_ratio=round(hub["records_per_s"] / alo["records_per_s"], 3),
            )
            _say(
                f"unencrypted {plain['records_per_s']:,.0f}, "
                f"at-least-once {alo['records_per_s']:,.0f}"
            )
        if "scale" in parts:
            small = provision(
                bootstrap,
                tmp,
                {
                    "districts": 1,
                    "streets_per_district": 2,
                    "communities_per_street": 3,
                    "departments": 1,
                },
                5000,
            )
            preload(small, scale_records)
            rate_10 = measure_router(small, tmp, broker_pid)["records_per_s"]
            large = provision(
                bootstrap,
                tmp,
                {
                    "districts": 10,
                    "streets_per_district": 10,
                    "communities_per_street": 99,
                    "departments": 5,
                },
                20_000,
            )
            preload(large, scale_records)
            rate_10k = measure_router(large, tmp, broker_pid)["records_per_s"]
            result.update(
                subscribers_10_records_per_s=round(rate_10),
                subscribers_10k_records_per_s=round(rate_10k),
                subscribers_10k=len(large.world.subscriptions),
                subscribers_10k_ratio=round(rate_10k / rate_10, 3),
            )
            _say(
                f"10 subscribers {rate_10:,.0f}, "
                f"{len(large.world.subscriptions)} subscribers {rate_10k:,.0f}"
            )
        if "latency" in parts:
            half_raw = result["baseline_records_per_s"] / 2
            half_hub = result["hub_records_per_s"] / 2
            result["baseline_p99_latency_ms"] = round(
                latency_raw(std, half_raw, latency_s, warmup=2.0), 1
            )
            result["p99_latency_ms"] = round(
                latency_hub(std, tmp, half_hub, latency_s, warmup=2.0), 1
            )
            result["latency_rates"] = {"baseline": round(half_raw), "hub": round(half_hub)}
            _say(
                f"p99 latency at half rate: hub {result['p99_latency_ms']} ms, "
                f"baseline {result['baseline_p99_latency_ms']} ms"
            )
    finally:
        if local is not None:
            local.down()
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.json)
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
