"""``govhub bench peers``: the hub router beside what an operator would deploy instead.

One broker, one pre-loaded backlog of the exchange benchmark's records, one run:

- **raw**: the batched Python consume→produce loop (:func:`hub.bench.exchange.measure_raw`),
  the baseline every ratio here is taken against unless it says otherwise;
- **router, standard mix**: 4 recipients and 3 views per record, masking, AES-256-GCM,
  transactions (:func:`hub.bench.exchange.measure_router`);
- **router, like-for-like mix**: 1 recipient per record, its whole record, no masking, no
  filter — what MirrorMaker 2 does, plus the hub's encryption and transactions (and once
  more with frames not encrypted);
- **MirrorMaker 2**: Apache Kafka's ``MirrorSourceConnector`` in a standalone Connect
  worker (its own JVM), source and target aliases on the same bootstrap, copying the same
  source topic byte for byte to ``src.<topic>``; timed from the first to the last record
  seen on the target topic's end offsets;
- **Connect SMT view**: a standalone Connect worker with the ``FileStreamSink`` connector
  reading a JSON copy of the same records (``JsonConverter``, schemas off) through
  ``Filter`` (predicate ``HasHeaderKey``: the district the record belongs to, stamped as a
  header key at load time — an approximation of the jurisdiction match), ``ReplaceField``
  (projection) and ``MaskField`` (masking): one subscriber view, one connector.

Each peer's JVM is started by the bench from Apache Kafka's Maven Central jars
(``connect-mirror``, ``connect-runtime``, ``connect-transforms``, ``connect-json``,
``connect-file``, the broker's Kafka version), cached beside the broker jars, and stopped at
the end of its scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from hub import kafka
from hub.bench import run_arguments
from hub.bench.exchange import (
    SOURCE_PARTITIONS,
    Installation,
    _cpu_seconds,
    _rss_bytes,
    measure_raw,
    measure_router,
    preload,
    provision,
)
from hub.bench.machine import machine
from hub.bench.session import bench_session
from hub.bench.world import BenchWorld, _party, _sub, record_pool
from hub.localkafka import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.jars import MARKER, _copy_dependencies
from hub.localkafka.jvm import find_java
from hub.localkafka.paths import default_cache_dir
from hub.localkafka.state import locked
from hub.parties.model import PartyKind
from hub.topics import ensure_topics

CONNECT_ARTIFACTS = (
    "connect-mirror",
    "connect-runtime",
    "connect-transforms",
    "connect-json",
    "connect-file",
)
# The standard mix's department view: the projection the SMT peer applies.
PROJECTED_OUT = ("phone", "bank_card", "remark")
# The community tier's masked fields (the hub's default masking for communities).
MASKED = ("id_card", "name", "address")
SMT_DISTRICT = "110101"  # the district whose view the SMT pipeline produces


# -- jars ----------------------------------------------------------------------------------------
def ensure_connect_jars(
    version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None
) -> Path:
    """Apache Kafka Connect's jars (MirrorMaker 2, transforms, JSON, file connectors) for
    ``version``, fetched once with Maven beside the broker's, with the broker's logging."""
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    home = cache / "connect" / version
    libs = home / "libs"
    if _complete(home):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("mvn not found: install Apache Maven 3.8+ (apt-get install maven)")
    home.mkdir(parents=True, exist_ok=True)
    with locked(home / ".lock"):
        if not _complete(home):
            (home / MARKER).unlink(missing_ok=True)
            shutil.rmtree(libs, ignore_errors=True)
            libs.mkdir(parents=True)
            log = home / "mvn.log"
            log.write_text("", encoding="utf-8")
            deps = [("org.apache.kafka", name, version) for name in CONNECT_ARTIFACTS]
            _copy_dependencies(mvn, deps, home, libs, log, transitive=True)
            names = sorted(p.name for p in libs.glob("*.jar"))
            (home / MARKER).write_text("\n".join(names) + "\n", encoding="utf-8")
    return libs


def _complete(home: Path) -> bool:
    marker = home / MARKER
    if not marker.is_file():
        return False
    names = marker.read_text(encoding="utf-8").split()
    return bool(names) and all((home / "libs" / n).is_file() for n in names)


def connect_classpath(version: str = DEFAULT_KAFKA_VERSION) -> str:
    """Connect's jars first, then the broker's (which carry the log4j2 binding); a jar
    present in both is taken once, Connect's copy."""
    connect = ensure_connect_jars(version)
    broker = ensure_kafka_jars(version)
    seen: set[str] = set()
    jars: list[str] = []
    for folder in (connect, broker):
        for jar in sorted(folder.glob("*.jar")):
            if jar.name not in seen:
                seen.add(jar.name)
                jars.append(str(jar))
    return os.pathsep.join(jars)


# -- a Connect worker ----------------------------------------------------------------------------
def _properties(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


@contextlib.contextmanager
def connect_standalone(
    workdir: Path,
    bootstrap: str,
    connector: dict[str, str],
    heap_mb: int = 512,
    worker_extra: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A standalone Connect worker in its own JVM running one connector; stopped on exit.
    ``worker_extra`` adds worker properties (e.g. ``producer.linger.ms``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    worker = workdir / "worker.properties"
    worker.write_text(
        _properties(
            {
                "bootstrap.servers": bootstrap,
                "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
                "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
                "offset.storage.file.filename": str(workdir / "offsets"),
                "offset.flush.interval.ms": "1000",
                "listeners": "http://127.0.0.1:0",
                "plugin.discovery": "only_scan",
                **(worker_extra or {}),
            }
        )
    )
    conn = workdir / "connector.properties"
    conn.write_text(_properties(connector))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(
        "rootLogger.level=WARN\nrootLogger.appenderRef.f.ref=F\n"
        "appender.f.type=File\nappender.f.name=F\n"
        f"appender.f.fileName={workdir / 'connect.log'}\n"
        "appender.f.layout.type=PatternLayout\n"
        "appender.f.layout.pattern=[%d] %p %m (%c)%n\n"
    )
    command = [
        str(find_java()),
        f"-Xms{heap_mb}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        connect_classpath(),
        "org.apache.kafka.connect.cli.ConnectStandalone",
        str(worker),
        str(conn),
    ]
    out = (workdir / "stdout.log").open("wb")
    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@dataclass
class Watch:
    """Samples of (time, progress, peer CPU s, broker CPU s) and the peer's peak RSS."""

    first: tuple[float, int, float | None, float | None] | None = None
    last: tuple[float, int, float | None, float | None] | None = None
    rss_peak: int = 0

    def sample(self, done: int, pid: int, broker_pid: int | None) -> None:
        now = time.perf_counter()
        row = (
            now,
            done,
            _cpu_seconds(pid),
            None if broker_pid is None else _cpu_seconds(broker_pid),
        )
        if self.first is None:
            self.first = row
        if self.last is None or done != self.last[1]:
            self.last = row
        self.rss_peak = max(self.rss_peak, _rss_bytes(pid))

    def result(self, total: int, scale: float = 1.0) -> dict[str, Any]:
        first, last = self.first, self.last
        if first is None or last is None or last[0] <= first[0]:
            raise RuntimeError("peer made no progress")
        seconds = last[0] - first[0]
        records = (last[1] - first[1]) * scale
        out: dict[str, Any] = {
            "records": round(records),
            "seconds": round(seconds, 3),
            "records_per_s": records / seconds,
            "complete": last[1] >= total,
            "rss_bytes": self.rss_peak,
        }
        if first[2] is not None and last[2] is not None:
            out["cpu_peer"] = round((last[2] - first[2]) / seconds, 3)
        if first[3] is not None and last[3] is not None:
            out["cpu_broker"] = round((last[3] - first[3]) / seconds, 3)
        return out


def _end_offsets(consumer: Any, topic: str) -> int:
    total = 0
    for p in range(SOURCE_PARTITIONS):
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
        except Exception:
            return 0
        total += max(high, 0)
    return total


# Worker settings of the tuned MirrorMaker 2 run: batches as large as the raw loop's.
TUNED_WORKER = {
    "producer.linger.ms": "5",
    "producer.batch.size": "1000000",
    "producer.compression.type": "none",
    "consumer.max.poll.records": "2000",
    "consumer.fetch.min.bytes": "65536",
}


def measure_mirrormaker(
    inst: Installation,
    tmp: Path,
    broker_pid: int | None,
    time_box: float,
    tuned: bool = False,
) -> dict[str, Any]:
    """MirrorSourceConnector copying the source topic to ``<alias>.<topic>`` on the same
    broker; rate from the first to the last record copied. Default: one task and Connect's
    client defaults (what an operator starts with); ``tuned``: one task per source
    partition and the large batches of :data:`TUNED_WORKER`."""
    bootstrap = inst.config.kafka.bootstrap_servers
    alias = f"mm{uuid.uuid4().hex[:6]}"
    target = f"{alias}.{inst.source}"
    connector = {
        "name": f"mirror-{alias}",
        "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector",
        "source.cluster.alias": alias,
        "target.cluster.alias": "dst",
        "source.cluster.bootstrap.servers": bootstrap,
        "target.cluster.bootstrap.servers": bootstrap,
        "topics": inst.source.replace(".", "\\."),
        "replication.factor": "-1",
        "offset-syncs.topic.replication.factor": "-1",
        "sync.topic.acls.enabled": "false",
        "sync.topic.configs.enabled": "false",
        "refresh.topics.interval.seconds": "1",
        "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "header.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "tasks.max": str(SOURCE_PARTITIONS if tuned else 1),
    }
    total = inst.records
    probe = kafka.consumer(bootstrap, f"bench-probe-{alias}", "bench-probe")
    watch = Watch()
    worker = TUNED_WORKER if tuned else None
    with connect_standalone(tmp / f"mm2-{alias}", bootstrap, connector, 512, worker) as proc:
        deadline = time.monotonic() + time_box
        while time.monotonic() < deadline and proc.poll() is None:
            done = _end_offsets(probe, target)
            if done > 0:
                watch.sample(done, proc.pid, broker_pid)
                if done >= total:
                    break
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"MirrorMaker 2 worker exited; see {tmp / f'mm2-{alias}'}")
    probe.close()
    result = watch.result(total)
    result["tasks"] = SOURCE_PARTITIONS if tuned else 1
    result["tuned"] = tuned
    result["target_topic"] = target
    return result


# -- the SMT view --------------------------------------------------------------------------------
def preload_json(inst: Installation, topic: str, count: int) -> int:
    """The same records as JSON objects (what ``JsonConverter`` reads), each with a header
    key naming its district; returns how many belong to :data:`SMT_DISTRICT`."""
    bootstrap = inst.config.kafka.bootstrap_servers
    ensure_topics(kafka.admin_client(bootstrap), {topic: (SOURCE_PARTITIONS, {})})
    pool = record_pool(inst.world.communities, len(inst.pool))
    values = [orjson.dumps(r, default=str) for r in pool]
    producer = kafka.producer(bootstrap, "bench-json", linger_ms=20, batch_size=1_000_000)
    mine = 0
    for i in range(count):
        rec = pool[i % len(pool)]
        district = rec["region_code"][:6]
        mine += district == SMT_DISTRICT
        headers: list[tuple[str, str | bytes | None]] = [
            (f"district.{district}", b"1"),
            ("govhub-region", rec["region_code"].encode()),
        ]
        while True:
            try:
                producer.produce(
                    topic, value=values[i % len(values)], key=rec["id_card"], headers=headers
                )
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("JSON preload not acknowledged")
    return mine


def smt_connector(name: str, topic: str, sink: Path) -> dict[str, str]:
    """FileStreamSink with Filter (drop other districts) → ReplaceField → MaskField."""
    return {
        "name": name,
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "file": str(sink),
        "consumer.override.auto.offset.reset": "earliest",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "transforms": "jurisdiction,project,mask",
        "transforms.jurisdiction.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.jurisdiction.predicate": "elsewhere",
        "transforms.project.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
        "transforms.project.exclude": ",".join(PROJECTED_OUT),
        "transforms.mask.type": "org.apache.kafka.connect.transforms.MaskField$Value",
        "transforms.mask.fields": ",".join(MASKED),
        "transforms.mask.replacement": "***",
        "predicates": "elsewhere",
        "predicates.elsewhere.type": "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        "predicates.elsewhere.name": f"district.{SMT_DISTRICT}",
        "transforms.jurisdiction.negate": "true",
    }


def measure_smt_view(
    inst: Installation, tmp: Path, broker_pid: int | None, time_box: float
) -> dict[str, Any]:
    bootstrap = inst.config.kafka.bootstrap_servers
    tag = uuid.uuid4().hex[:6]
    topic = f"{inst.config.kafka.topic_prefix}json-{tag}"
    total = inst.records
    mine = preload_json(inst, topic, total)
    sink = tmp / f"smt-{tag}.jsonl"
    sink.touch()
    watch = Watch()
    lines = 0
    with (
        connect_standalone(
            tmp / f"smt-{tag}", bootstrap, smt_connector(f"view-{tag}", topic, sink)
        ) as proc,
        sink.open("rb") as reader,
    ):
        deadline = time.monotonic() + time_box
        while time.monotonic() < deadline and proc.poll() is None:
            chunk = reader.read()
            if chunk:
                lines += chunk.count(b"\n")
                watch.sample(lines, proc.pid, broker_pid)
                if lines >= mine:
                    break
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"Connect worker exited; see {tmp / f'smt-{tag}'}")
    # Written lines are the records of one district; the records read in the same window
    # are that count scaled by the district's share of the backlog.
    result = watch.result(mine, scale=total / mine)
    result["written"] = lines
    result["view_share"] = round(mine / total, 4)
    with sink.open("rb") as f:
        result["sample_output"] = f.readline().decode("utf-8", "replace").strip()
    return result


# -- the like-for-like world ---------------------------------------------------------------------
def single_recipient_world(resource: str, districts: int = 10) -> BenchWorld:
    """One party per district subscribed for its district and nothing else, records spread
    over communities of all districts: one recipient per record, the whole record (the
    district tier's view), no masking, no projection."""
    parties, subs, codes = [], [], []
    for d in range(1, districts + 1):
        region = f"1101{d:02d}000000"
        parties.append(_party(f"d{d:02d}", PartyKind.UNIT, region, None))
        subs.append(_sub(resource, f"d{d:02d}", region, "区级统筹"))
        codes += [f"1101{d:02d}{s:03d}{c:03d}" for s in range(1, 11) for c in range(1, 11)]
    return BenchWorld(parties, subs, codes, 1)


def provision_single(bootstrap: str, tmp: Path, pool_size: int) -> Installation:
    """:func:`provision` with the like-for-like world."""
    return provision(bootstrap, tmp, {}, pool_size, world=single_recipient_world)


# -- the run -------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_arguments(parser, "smaller backlog, time-boxed")
    parser.add_argument("--records", type=int, default=None, help="source records per run")


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def run(args: argparse.Namespace) -> int:
    # Router rates are taken between its first and last commits (at most 50,000 records a
    # transaction): the backlog holds several transactions even in --quick.
    records = args.records or (300_000 if args.quick else 600_000)
    time_box = 120.0 if args.quick else 600.0
    ensure_connect_jars()
    result: dict[str, Any] = {
        "benchmark": "peers",
        "quick": bool(args.quick),
        "records": records,
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kafka_version": DEFAULT_KAFKA_VERSION,
    }
    with bench_session("peers", args.bootstrap) as session:
        bootstrap, tmp = session.bootstrap, session.tmp
        broker_pid = session.broker_pid
        std = provision(bootstrap, tmp, {}, 5000)
        preload(std, records)
        single = provision_single(bootstrap, tmp, 5000)
        preload(single, records)
        runs: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        std_out = f"{std.config.kafka.topic_prefix}raw-out"
        plan: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
            ("raw", "raw", lambda: measure_raw(std, std_out, broker_pid)),
            (
                "router_standard",
                "router standard mix",
                lambda: measure_router(std, tmp, broker_pid),
            ),
            (
                "router_single",
                "router 1-recipient mix",
                lambda: measure_router(single, tmp, broker_pid),
            ),
            (
                "router_single_plaintext",
                "router 1-recipient mix, unencrypted",
                lambda: measure_router(single, tmp, broker_pid, plaintext=True),
            ),
            (
                "mirrormaker2",
                "MirrorMaker 2",
                lambda: measure_mirrormaker(single, tmp, broker_pid, time_box),
            ),
            (
                "mirrormaker2_tuned",
                "MirrorMaker 2, tuned",
                lambda: measure_mirrormaker(single, tmp, broker_pid, time_box, tuned=True),
            ),
            (
                "connect_smt_view",
                "Connect SMT view",
                lambda: measure_smt_view(std, tmp, broker_pid, time_box),
            ),
        ]
        for name, label, measure in plan:
            try:
                runs[name] = measure()
                _say(label, runs[name])
            except Exception as exc:  # recorded; the other peers still run
                errors[name] = str(exc)
                print(f"{label}: {exc}", file=sys.stderr, flush=True)
        if errors:
            result["errors"] = errors
        rate = {k: v["records_per_s"] for k, v in runs.items()}
        result["runs"] = {
            k: {x: (round(y) if x == "records_per_s" else y) for x, y in v.items()}
            for k, v in runs.items()
        }
        pairs = {
            "hub_vs_mirrormaker2_like_for_like": ("router_single", "mirrormaker2"),
            "hub_vs_mirrormaker2_tuned_like_for_like": ("router_single", "mirrormaker2_tuned"),
            "hub_unencrypted_vs_mirrormaker2_like_for_like": (
                "router_single_plaintext",
                "mirrormaker2",
            ),
            "hub_vs_raw_standard_mix": ("router_standard", "raw"),
            "hub_vs_raw_like_for_like": ("router_single", "raw"),
            "mirrormaker2_vs_raw": ("mirrormaker2", "raw"),
            "hub_standard_vs_connect_smt_view": ("router_standard", "connect_smt_view"),
            "connect_smt_view_vs_raw": ("connect_smt_view", "raw"),
        }
        result["ratios"] = {
            key: _ratio(rate[a], rate[b])
            for key, (a, b) in pairs.items()
            if a in rate and b in rate
        }
        result["broker_rss_bytes"] = _rss_bytes(broker_pid) if broker_pid else None
        result["notes"] = {
            "connect_smt_view": "one subscriber view (one district, projected and masked) per "
            "connector; the hub router makes 4 deliveries under 3 views per record at its rate",
            "mirrormaker2": "MirrorSourceConnector, tasks.max=1 (its default) and Connect's "
            "client defaults, standalone worker, byte copy to <alias>.<topic> on the same broker",
            "mirrormaker2_tuned": "the same with tasks.max=3 (one per source partition), "
            "producer linger.ms=5, batch.size=1000000, consumer max.poll.records=2000",
        }
    return session.finish(result, args.json)


def _say(what: str, run_result: dict[str, Any]) -> None:
    print(f"{what}: {run_result['records_per_s']:,.0f} records/s", file=sys.stderr, flush=True)
