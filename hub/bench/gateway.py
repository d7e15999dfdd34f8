"""``govhub bench gateway``: 10,000 subscribers, each its own stream, on one gateway process.

One broker, four processes besides it: the router (``govhub serve --roles router``), the
gateway (``govhub serve --roles gateway``), the simulated subscribers
(``python -m hub.gateway.loadgen``, lean raw-socket clients of all three protocols), and
this coordinator, which provisions the hub, publishes records and watches the delivery
topic with a read_committed consumer (the moment it sees a frame is taken as its commit).

The world is the exchange benchmark's standard mix (:mod:`hub.bench.world`): 10,000
communities under 100 streets under 10 districts, and 5 departments; each record reaches
4 recipients. Every party is connected — 10,115 streams.

Figures:

* ``subscribers`` — streams the gateway held at once;
* ``rss_bytes_per_idle_subscriber`` — the gateway's resident memory with every stream open
  and idle, minus its memory before the first one, per stream;
* ``router_output_per_s`` — record deliveries the router committed per second, working off
  a backlog, from its first to its last commit;
* ``deliveries_per_s`` — record deliveries the subscribers received per second, from the
  router's first commit to the last delivery; ``delivery_ratio`` is the quotient (1.0: the
  gateway kept pace with the router);
* ``p99_frame_latency_ms`` — records published at half load: half of what the path
  delivered at full load (the lower of ``router_output_per_s`` and ``deliveries_per_s``;
  half the router's rate alone would put a gateway slower than the router past half of
  its capacity); per frame, the time from its commit (seen by the watching consumer) to
  its arrival at the subscriber: the kernel's receive timestamp on the subscriber's
  socket. The simulator parses 10,000 streams in one process, so a frame late in a burst
  would otherwise be charged for the parsing of every frame before it, which no real
  subscriber pays;
  ``p99_parsed_by_simulator_ms`` is the same figure to the moment the simulator had
  parsed it. ``gc_pauses`` and ``loop_stalls_over_10ms`` count the gateway's collector
  pauses and event-loop stalls inside the window. The simulator runs at a lower priority
  (nice 10): it stands for thousands of subscribers' own machines, and the kernel's receive
  times do not depend on when it runs.

Subscribers connect with resume tickets the coordinator issues under the hub's ticket key
(as a reconnecting subscriber does): the first-ever connection of a party pays one scrypt
token check (~30 ms of CPU), which for 10,000 parties at once would measure the hash, not
the gateway. That first-connection cost is measured separately on a sample
(``first_connect_ms``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from hub import kafka
from hub.bench import emit, run_arguments
from hub.bench.machine import machine
from hub.bench.world import BenchWorld, bench_resource, build_world, record_pool
from hub.config import HubConfig, isolated_config
from hub.crypto.kms import LocalFileKms
from hub.delivery import RECORD_COUNT_HEADER
from hub.gateway.tickets import TicketBook
from hub.localkafka import LocalKafka, find_free_base_port
from hub.parties.model import Party, hash_token, new_token
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec
from hub.state import ControlState
from hub.subscriptions.model import SubscriptionStatus
from hub.topics import ensure_hub_topics, ensure_resource_topics

log = logging.getLogger(__name__)

SOURCE_PARTITIONS = 3
TOKEN_SAMPLE = 20
PROBE_S = 0.05  # the gateway's loop-stall probe interval (hub/gateway/timers.py)
GOALS = {
    "subscribers": 10_000,
    "delivery_ratio": 0.8,
    "p99_frame_latency_ms": 50.0,
    "rss_bytes_per_idle_subscriber": 50_000,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_arguments(parser, "fewer records (about 3 minutes)")
    parser.add_argument("--records", type=int, default=None, help="records in the backlog run")
    parser.add_argument(
        "--communities", type=int, default=100, help="communities per street (100: 10,115 streams)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's folder (logs, dumps) in /tmp"
    )


# -- helpers ---------------------------------------------------------------------------------
def _toml(tree: dict[str, Any]) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in tree.items() if not isinstance(v, dict)]
    for section, values in tree.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _serve(config_path: Path, roles: str, log_path: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    with open(log_path, "a") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "--log-level",
                "WARNING",
                "serve",
                "--roles",
                roles,
                "--config",
                str(config_path),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "govhub serving" not in line:
        proc.kill()
        raise RuntimeError(f"{roles} did not start: {log_path.read_text()[-2000:]}")
    return proc, line


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class CommitWatch:
    """A read_committed consumer on the delivery topic: when each frame became visible."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.seen: dict[tuple[int, int], float] = {}
        self.entries = 0
        self.first: float | None = None
        self.last: float | None = None
        self._stop = threading.Event()
        self._consumer = kafka.consumer(
            bootstrap, f"bench-watch-{uuid.uuid4().hex}", "bench-watch", fetch_wait_max_ms=5
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer = self._consumer
        while not self._stop.is_set():
            first = consumer.poll(0.05)
            if first is None:
                continue
            now = time.time()
            for msg in [first, *consumer.consume(5000, 0)]:
                if msg.error() is not None:
                    continue
                self.seen[(int(msg.partition() or 0), int(msg.offset() or 0))] = now
                headers: Any = msg.headers() or ()
                for name, value in headers:
                    if name == RECORD_COUNT_HEADER:
                        self.entries += int(value)
                if self.first is None:
                    self.first = now
                self.last = now
        consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


SIMULATOR_NICE = 10


def _yielding() -> None:
    """The simulator gives way to the hub's processes when the CPUs are contended: its
    10,000 subscribers stand for machines of their own, whose CPU is not the gateway's.
    Its receive times are the kernel's (taken as packets arrive, whenever the simulator
    runs), so its scheduling does not change a measured latency."""
    os.nice(SIMULATOR_NICE)


class Simulator:
    """The subscriber simulator process, driven over its stdin/stdout."""

    def __init__(self, url: str, subscribers: Path, log_path: Path) -> None:
        with open(log_path, "a") as log_file:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hub.gateway.loadgen",
                    "--url",
                    url,
                    "--subscribers",
                    str(subscribers),
                    "--ramp",
                    "1500",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                preexec_fn=_yielding,
            )
        self.status: dict[str, Any] = {}
        self._replies: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            doc = orjson.loads(line)
            with self._lock:
                if "dumped" in doc:
                    self._replies.append(doc)
                else:
                    self.status = doc
                self._lock.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.status):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    return False
                self._lock.wait(min(remaining, 1.0))
        return True

    def dump(self, path: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"dump {path}\n")
        self.proc.stdin.flush()
        with self._lock:
            while not self._replies:
                self._lock.wait(5)
            self._replies.pop()
        doc: dict[str, Any] = orjson.loads(path.read_bytes())
        return doc

    def stop(self) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- the run ---------------------------------------------------------------------------------
class GatewayBench:
    def __init__(self, bootstrap: str, tmp: Path, communities: int) -> None:
        self.bootstrap = bootstrap
        self.tmp = tmp
        prefix = f"gwb{uuid.uuid4().hex[:6]}."
        self.gateway_port = _free_port()
        self.config: HubConfig = isolated_config(bootstrap, prefix, tmp / "state")
        self.world: BenchWorld = build_world(
            "dibao", districts=10, streets_per_district=10, communities_per_street=communities
        )
        self.state = ControlState(self.config)
        self.tokens: dict[str, str] = {}
        self.pool: list[tuple[bytes, bytes, bytes]] = []
        self.source = ""
        self.sent = 0
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self.simulator: Simulator | None = None
        self.watch: CommitWatch | None = None

    # provisioning
    def provision(self, pool_size: int) -> None:
        cfg = self.config
        admin = kafka.admin_client(self.bootstrap)
        ensure_hub_topics(admin, self.state.topics, cfg.kafka.delivery_partitions)
        self.state.start(60)
        sample = bench_resource()
        resource = sample.resource
        schema_id = self.state.registry.register(resource.subject, sample.schema_json)
        self.state.put_resource(resource)
        ensure_resource_topics(
            admin, self.state.topics, resource.department, resource.code, SOURCE_PARTITIONS
        )
        parties: list[Party] = []
        for i, party in enumerate(self.world.parties):
            if i < TOKEN_SAMPLE:  # a few parties with real tokens, to time a first connect
                token = new_token(party.id)
                self.tokens[party.id] = token
                party = party.model_copy(update={"token_hash": hash_token(token)})
            parties.append(party)
        self._bulk(self.state.topics.parties, [(p.id, p.model_dump(mode="json")) for p in parties])
        self._bulk(
            self.state.topics.subscriptions,
            [(s.id, s.model_dump(mode="json")) for s in self.world.subscriptions],
        )
        self.parties = parties
        if not self.state.catch_up_policy(60):
            raise RuntimeError("control state did not catch up")
        codec = AvroCodec(sample.schema_json)
        self.pool = [
            (frame(schema_id, codec.encode(r)), r["region_code"].encode(), r["id_card"].encode())
            for r in record_pool(self.world.communities, pool_size)
        ]
        self.source = self.state.topics.source(resource.department, resource.code)

    def _bulk(self, topic: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
        producer = kafka.producer(self.bootstrap, "bench-provision", linger_ms=20)
        for key, value in rows:
            while True:
                try:
                    producer.produce(topic, key=key.encode(), value=orjson.dumps(value))
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(60):
            raise RuntimeError(f"provisioning {topic} not acknowledged")

    # processes
    def start_hub(self) -> None:
        cfg = self.config
        path = self.tmp / "hub.toml"
        path.write_text(
            _toml(
                {
                    "state_dir": str(cfg.state_dir),
                    "kafka": {
                        "bootstrap_servers": self.bootstrap,
                        "topic_prefix": cfg.kafka.topic_prefix,
                    },
                    "router": {
                        "group_id": cfg.router.group_id,
                        "transactional_id": cfg.router.transactional_id,
                    },
                    "gateway": {
                        "port": self.gateway_port,
                        "group_id": cfg.gateway.group_id,
                        "max_subscribers": 15_000,
                    },
                    "crypto": {"kek_file": str(cfg.crypto.kek_file)},
                    "metrics": {"port": 0},
                }
            )
        )
        self.procs["router"], _ = _serve(path, "router", self.tmp / "router.log")
        self.procs["gateway"], _ = _serve(path, "gateway", self.tmp / "gateway.log")
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"

    def gateway_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.gateway_url + "/readyz", timeout=10) as response:
            doc: dict[str, Any] = orjson.loads(response.read())
            return doc

    def first_connect_ms(self) -> list[float]:
        """Time to a stream's welcome with a token (scrypt), for the sampled parties."""
        times = []
        for token in self.tokens.values():
            started = time.perf_counter()
            request = urllib.request.Request(
                f"{self.gateway_url}/v1/stream/poll?wait=0&client=probe",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            times.append((time.perf_counter() - started) * 1000)
        return times

    def connect_all(self, timeout: float) -> float:
        """Issue tickets, start the simulator, wait until every stream is held."""
        kms = LocalFileKms(self.config.crypto.kek_file)
        book = TicketBook(self.state.keys, kms)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                book.issue("probe", None, 0)
                break
            except Exception:  # the gateway creates the key at its start
                time.sleep(0.2)
        expires = int(time.time() * 1000) + 4 * 3600 * 1000
        protocols = ("sse", "sse", "ws", "ws", "poll")  # 40 / 40 / 20 %
        subscribers = [
            {
                "party": p.id,
                "credential": book.issue(p.id, p.token_hash, expires),
                "protocol": protocols[i % len(protocols)],
            }
            for i, p in enumerate(self.parties)
        ]
        self.protocols = {k: sum(1 for s in subscribers if s["protocol"] == k) for k in protocols}
        path = self.tmp / "subscribers.json"
        path.write_bytes(orjson.dumps(subscribers))
        self.simulator = Simulator(self.gateway_url, path, self.tmp / "simulator.log")
        started = time.monotonic()
        want = len(subscribers)
        if not self.simulator.wait(lambda s: s.get("welcomed", 0) >= want, timeout):
            raise RuntimeError(f"only {self.simulator.status} of {want} streams connected")
        return time.monotonic() - started

    def publish(self, count: int, rate: float | None = None) -> float:
        """Publish ``count`` records (at ``rate`` per second, else as fast as possible)."""
        producer = kafka.producer(
            self.bootstrap, "bench-publish", linger_ms=1 if rate else 20, batch_size=1_000_000
        )
        pool = self.pool
        started = time.perf_counter()
        base = self.sent
        for n in range(count):
            if rate is not None and n % 50 == 0:
                due = started + n / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                producer.poll(0)
            i = base + n
            value, region, key = pool[i % len(pool)]
            headers: list[tuple[str, str | bytes | None]] = [
                ("govhub-region", region),
                ("govhub-record-id", b"gwbench:%d" % i),
                ("govhub-ingested-at", b"%d" % int(time.time() * 1000)),
            ]
            while True:
                try:
                    producer.produce(self.source, value=value, key=key, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(120):
            raise RuntimeError("records not acknowledged")
        self.sent += count
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()
        if self.watch is not None:
            self.watch.stop()
        for proc in self.procs.values():
            _stop(proc)
        self.state.stop()


def run_bench(
    bootstrap: str, tmp: Path, records: int, quick: bool, communities: int
) -> dict[str, Any]:
    bench = GatewayBench(bootstrap, tmp, communities)
    result: dict[str, Any] = {
        "benchmark": "gateway",
        "quick": quick,
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mix": f"{len(bench.world.communities):,} communities, 100 streets, 10 districts, "
        "5 departments; every party connected; 4 deliveries per record",
    }
    try:
        bench.provision(pool_size=min(records, 50_000))
        bench.start_hub()
        gateway_pid = bench.procs["gateway"].pid
        time.sleep(3.0)
        rss_base = _rss(gateway_pid)
        first = bench.first_connect_ms()
        result["first_connect_ms"] = {
            "token_p50": round(statistics.median(first), 1),
            "sample": len(first),
        }
        result["connect_s"] = round(bench.connect_all(timeout=300), 1)
        streams = bench.gateway_stats()["streams"]
        time.sleep(5.0)
        rss_idle = _rss(gateway_pid)
        held = bench.gateway_stats()["streams"]
        result["subscribers"] = min(streams, held)
        result["protocols"] = bench.protocols
        result["gateway_rss_bytes"] = {"before": rss_base, "idle": rss_idle}
        result["rss_bytes_per_idle_subscriber"] = round((rss_idle - rss_base) / held)
        log.info("streams held: %s", result)

        # Full load: a backlog, the router at its own pace, the gateway behind it.
        topic = bench.state.topics.delivery
        bench.watch = CommitWatch(bootstrap, topic, bench.config.kafka.delivery_partitions)
        simulator = bench.simulator
        assert simulator is not None
        cpu0 = _cpu_seconds(gateway_pid)
        before = simulator.status.get("entries", 0)
        deliveries = records * bench.world.recipients_per_record
        publish_started = time.time()
        bench.publish(records)
        if not simulator.wait(
            lambda s: s.get("entries", 0) - before >= deliveries, 120 + records / 500
        ):
            raise RuntimeError(f"not all delivered: {simulator.status}")
        dump = simulator.dump(tmp / "full.json")
        watch = bench.watch
        assert watch.first is not None and watch.last is not None
        # Both from the same start: the backlog is there for the router from the moment
        # it is published; the router is done at its last commit, the gateway at the
        # subscribers' last receipt.
        received = [t for t in dump["times"] if t >= publish_started]
        router_s = watch.last - publish_started
        gateway_s = max(received) - publish_started
        result["records"] = records
        result["router_output_per_s"] = round(deliveries / router_s)
        result["deliveries_per_s"] = round(deliveries / gateway_s)
        result["delivery_ratio"] = round(router_s / gateway_s, 3)
        result["gateway_cpu_s_per_1k_deliveries"] = round(
            (_cpu_seconds(gateway_pid) - cpu0) / deliveries * 1000, 4
        )
        # Streams the gateway ended while the backlog ran (slow-consumer: a subscriber
        # that did not read for a while; it resumes from its cursor by a catch-up read).
        ended: dict[str, int] = {}
        for _party, reason, at in dump["end_events"]:
            if at >= publish_started:
                ended[reason] = ended.get(reason, 0) + 1
        result["full_load_stream_ends"] = ended

        log.info("full load: %s", result)

        # Half load: latency from commit to the subscriber, at half of what the path
        # (router, gateway, subscribers) delivered at full load — half the router's own
        # rate would load a gateway slower than the router beyond half its capacity.
        capacity = min(result["router_output_per_s"], result["deliveries_per_s"])
        rate = capacity / bench.world.recipients_per_record / 2
        seconds = 8.0 if quick else 20.0
        count = int(rate * seconds)
        before = simulator.status.get("entries", 0)
        frames_before = len(dump["offsets"])
        publish_started = time.time()
        bench.publish(count, rate)
        simulator.wait(
            lambda s: s.get("entries", 0) - before >= count * bench.world.recipients_per_record, 60
        )
        dump = simulator.dump(tmp / "half.json")
        latencies = []
        parsed = []
        by_protocol: dict[str, list[float]] = {}
        settle = publish_started + 1.0
        for i in range(frames_before, len(dump["offsets"])):
            key = (dump["partitions"][i], dump["offsets"][i])
            seen = watch.seen.get(key)
            if seen is not None and seen >= settle:
                latency = (dump["times"][i] - seen) * 1000
                latencies.append(latency)
                parsed.append((dump["parsed"][i] - seen) * 1000)
                by_protocol.setdefault(dump["protocols"][i], []).append(latency)
        result["half_load"] = {
            "basis": "half of min(router_output_per_s, deliveries_per_s)",
            "records_per_s": round(rate),
            "deliveries_per_s": round(rate * bench.world.recipients_per_record),
            "frames": len(latencies),
            "p50_frame_latency_ms": round(_percentile(latencies, 0.5), 1),
            "p99_frame_latency_ms": round(_percentile(latencies, 0.99), 1),
            "p99_parsed_by_simulator_ms": round(_percentile(parsed, 0.99), 1),
            "p99_by_protocol_ms": {
                name: round(_percentile(values, 0.99), 1)
                for name, values in sorted(by_protocol.items())
            },
        }
        result["p99_frame_latency_ms"] = result["half_load"]["p99_frame_latency_ms"]
        result["misaddressed_frames"] = dump["misaddressed"]

        stats = bench.gateway_stats()
        result["half_load"].update(_stalls_between(stats, publish_started, time.time()))
        result["gateway_stats"] = {k: v for k, v in stats.items() if not k.endswith("recent")}

        # Revocation: how soon a revoked community's stream ends.
        result["revocation_cutoff_ms"] = revoke_sample(bench, simulator, tmp)
    finally:
        bench.stop()
    result["goals"] = {
        "subscribers": result.get("subscribers", 0) >= GOALS["subscribers"],
        "delivery_ratio": result.get("delivery_ratio", 0) >= GOALS["delivery_ratio"],
        "p99_frame_latency_ms": result.get("p99_frame_latency_ms", 1e9)
        <= GOALS["p99_frame_latency_ms"],
        "rss_bytes_per_idle_subscriber": result.get("rss_bytes_per_idle_subscriber", 1e9)
        <= GOALS["rss_bytes_per_idle_subscriber"],
    }
    return result


def _stalls_between(stats: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """The gateway's garbage-collection pauses and event-loop stalls (over 10 ms) inside
    the measured window: what its tail latency is made of on the gateway's side. The CPU
    shares say what a stall was: the loop's thread working (loop share near 1), waiting
    for the GIL while other threads of the gateway ran (process share near 1, loop share
    low), or waiting for a core (both low)."""
    pauses = [p for at, _gen, p in stats.get("gc_recent", ()) if start <= at <= end]
    stalls = [row[1:] for row in stats.get("loop_stalls_recent", ()) if start <= row[0] <= end]
    span = max(1e-9, sum(late + PROBE_S for late, _, _ in stalls))
    return {
        "gc_pauses": len(pauses),
        "gc_pause_max_ms": round(max(pauses, default=0.0) * 1000, 1),
        "loop_stalls_over_10ms": len(stalls),
        "loop_stall_max_ms": round(max((late for late, _, _ in stalls), default=0.0) * 1000, 1),
        "loop_stall_loop_cpu_share": round(sum(row[1] for row in stalls) / span, 2),
        "loop_stall_process_cpu_share": round(sum(row[2] for row in stalls) / span, 2),
    }


def revoke_sample(bench: GatewayBench, simulator: Simulator, tmp: Path) -> dict[str, Any]:
    communities = [p for p in bench.parties if p.id.startswith("c")][:20]
    written: dict[str, float] = {}
    for party in communities:
        sub_id = next(s.id for s in bench.world.subscriptions if s.subscriber == party.id)
        sub = bench.state.subscription(sub_id)
        assert sub is not None
        written[party.id] = time.time()  # from the write's start: produce, then read back
        bench.state.put_subscription(sub.model_copy(update={"status": SubscriptionStatus.REVOKED}))
        time.sleep(0.05)
    simulator.wait(lambda s: s.get("ends", 0) >= len(communities), 10)
    dump = simulator.dump(tmp / "ends.json")
    cut = [
        (at - written[party]) * 1000
        for party, reason, at in dump["end_events"]
        if party in written and reason == "revoked"
    ]
    if not cut:
        return {"revoked": len(communities), "cut_off": 0}
    return {
        "revoked": len(communities),
        "cut_off": len(cut),
        "p50": round(statistics.median(cut), 1),
        "max": round(max(cut), 1),
    }


def run(args: argparse.Namespace) -> int:
    records = args.records or (20_000 if args.quick else 60_000)
    tmp = Path(tempfile.mkdtemp(prefix="govhub-bench-gateway-"))
    local = None
    bootstrap = args.bootstrap
    if not bootstrap:
        local = LocalKafka(tmp / "kafka", base_port=find_free_base_port())
        bootstrap = local.up()
    started = time.perf_counter()
    try:
        result = run_bench(bootstrap, tmp, records, bool(args.quick), args.communities)
    finally:
        if local is not None:
            local.down()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.json)
    return 0
