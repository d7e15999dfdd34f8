"""``govhub bench soak``: the whole exchange path at half load for half an hour, memory flat.

Every role runs as its own process on one broker: the api, the router, the gateway and the
audit notary (``govhub serve --roles …``), a publisher process feeding the source topic
through the connector publisher (:class:`connectors.publisher.Publisher`: admission, Avro,
checkpoints), and the simulated subscribers of :mod:`hub.gateway.loadgen` — one stream per
party of the world (the gateway benchmark's, :class:`hub.bench.gateway.GatewayBench`; 1,115
streams by default, 415 with ``--quick``), each record reaching 4 of them.

1. **Calibration.** A warm-up burst (every recipient gets its data key), then twice a
   backlog published as fast as the publisher goes; the path's maximum is the better of
   the two backlogs over the time until the subscribers hold every delivery of it.
2. **Soak.** Records published at half that rate for ``--minutes``. Every ``--interval``
   seconds each process's RSS, thread count and open descriptors are read from ``/proc``
   (the broker JVM's too, for information).
3. **Accounting.** Publishing stops, the subscribers drain, and every delivery the
   published records entitle (4 per record) must have arrived — no more, no fewer.

Memory growth per hub process compares two robust levels after the warm-up (the first
sixth of the run: 5 of 30 minutes): the median RSS over the first fifth of the measured
period against the median over its last fifth. The goal is under 5 % for every hub
process. The simulator keeps a record of every frame it received, so it grows by design;
its series and the broker's are reported, not judged.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from hub import kafka
from hub.bench import run_arguments
from hub.bench.gateway import SOURCE_PARTITIONS, GatewayBench, Simulator, _serve, _toml
from hub.bench.machine import machine
from hub.bench.session import bench_session
from hub.bench.world import bench_resource, build_world, record_pool
from hub.topics import ensure_topics

GROWTH_GOAL_PCT = 5.0
HUB_PROCESSES = ("api", "router", "gateway", "audit", "publisher")
WARMUP_SHARE = 1 / 6  # 5 of 30 minutes
WINDOW_SHARE = 1 / 5  # of the measured period, for each robust level
SERIES_POINTS = 200  # per process in the JSON, at most
# Short retention on the busy topics: half an hour at half load is ~10 GB of frames.
RETENTION = {"retention.ms": "600000", "segment.ms": "60000", "segment.bytes": "33554432"}
PUBLISH_TICK_S = 0.05
CALIBRATIONS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--minutes", type=float, default=None, help="soak length (default 30; --quick: 3)"
    )
    run_arguments(parser, "415 subscribers, smaller calibration, 3 minutes")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between /proc samples"
    )
    parser.add_argument(
        "--communities", type=int, default=None, help="communities per street (10; --quick: 3)"
    )


# -- /proc ---------------------------------------------------------------------------------
def proc_stats(pid: int) -> dict[str, int] | None:
    """RSS bytes, threads and open file descriptors of a process (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss": int(fields["VmRSS"].split()[0]) * 1024,
        "threads": int(fields["Threads"]),
        "fds": fds,
    }


class Sampler(threading.Thread):
    """Samples every watched process every ``interval`` seconds, from its start."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.series: dict[str, dict[str, list[float]]] = {
            name: {"t": [], "rss": [], "threads": [], "fds": []} for name in pids
        }
        self.started = time.monotonic()
        self._done = threading.Event()

    def run(self) -> None:
        tick = 0
        while True:
            self.sample()
            tick += 1
            if self._done.wait(max(0.0, self.started + tick * self.interval - time.monotonic())):
                return

    def sample(self) -> None:
        now = round(time.monotonic() - self.started, 1)
        for name, pid in self.pids.items():
            stats = proc_stats(pid)
            if stats is None:
                continue
            row = self.series[name]
            row["t"].append(now)
            for key, value in stats.items():
                row[key].append(value)

    def stop(self) -> None:
        self._done.set()
        self.join(30)


def growth(series: dict[str, list[float]], warmup_s: float, end_s: float) -> dict[str, Any]:
    """Median RSS over the first and the last fifth of the period after the warm-up, and
    the growth between them in per cent; thread and descriptor counts at both ends."""
    window = (end_s - warmup_s) * WINDOW_SHARE
    times = series["t"]

    def level(key: str, low: float, high: float) -> float | None:
        values = [v for t, v in zip(times, series[key], strict=True) if low <= t <= high]
        return statistics.median(values) if values else None

    start = level("rss", warmup_s, warmup_s + window)
    end = level("rss", end_s - window, end_s)
    if start is None or end is None:
        return {"growth_pct": None, "samples": len(times)}
    return {
        "rss_start": round(start),
        "rss_end": round(end),
        "growth_pct": round((end - start) / start * 100, 2),
        "threads": [
            level("threads", warmup_s, warmup_s + window),
            level("threads", end_s - window, end_s),
        ],
        "fds": [level("fds", warmup_s, warmup_s + window), level("fds", end_s - window, end_s)],
        "samples": len(times),
        "window_s": round(window, 1),
    }


def downsample(series: dict[str, list[float]], points: int = SERIES_POINTS) -> dict[str, Any]:
    step = max(1, -(-len(series["t"]) // points))
    return {key: values[::step] for key, values in series.items()}


# -- the publisher process -------------------------------------------------------------------
class PublisherProcess(Simulator):
    """``python -m hub.bench.soak --config FILE --communities N``: the connector publisher
    in its own process, driven over stdin (``burst N``, ``rate R``, ``stop``); it prints a
    JSON status line a second and after each command."""

    def __init__(self, config: Path, communities: int, log_path: Path) -> None:
        with open(log_path, "a") as log_file:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hub.bench.soak",
                    "--config",
                    str(config),
                    "--communities",
                    str(communities),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
        self.status = {}
        self._replies = []
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()


def publisher_main(config_path: Path, communities: int) -> int:
    """Publish pool records through :class:`Publisher` as told on stdin."""
    from connectors.base import SourceRecord
    from connectors.publisher import Publisher
    from hub.catalogue.known_regions import PartyRegions
    from hub.config import load_config
    from hub.controlstate import CompactedTable
    from hub.state import ControlState

    config = load_config(config_path, env={})
    bootstrap = config.kafka.bootstrap_servers
    state = ControlState(config)
    state.start(60)
    sample = bench_resource()
    resource = sample.resource
    schema_id = state.registry.lookup(resource.subject, sample.schema_json).schema_id
    checkpoints = CompactedTable(bootstrap, state.topics.connect_offsets)
    checkpoints.start()
    publisher = Publisher(
        connector="soak-publisher",
        bootstrap_servers=bootstrap,
        topics=state.topics,
        resource=resource,
        schema_id=schema_id,
        codec=state.registry.codec(schema_id),
        checkpoints=checkpoints,
        regions=PartyRegions(state.parties),
    )
    world = build_world(resource.code, communities_per_street=communities)
    rows = record_pool(world.communities, 5000)
    commands: list[str] = []
    lock = threading.Lock()

    def read_commands() -> None:
        for line in sys.stdin:
            with lock:
                commands.append(line.strip())
        with lock:
            commands.append("stop")

    threading.Thread(target=read_commands, daemon=True).start()
    sent = 0
    burst = 0
    rate = 0.0
    rate_from = (time.monotonic(), 0)  # (when, records sent then)
    reported = 0.0
    last_mode = "idle"

    def publish(count: int) -> None:
        nonlocal sent
        batch = [
            SourceRecord(f"soak:{n}", rows[n % len(rows)], {"n": n})
            for n in range(sent, sent + count)
        ]
        publisher.publish(batch)
        sent += count

    def report(mode: str) -> None:
        doc = {
            "published": publisher.stats.published,
            "rejected": sum(publisher.stats.rejected.values()),
            "mode": mode,
            "at": time.time(),
        }
        print(orjson.dumps(doc).decode(), flush=True)

    report("idle")
    while True:
        with lock:
            pending, commands[:] = list(commands), []
        if "stop" in pending:
            break
        for command in pending:
            verb, _, arg = command.partition(" ")
            if verb == "burst":
                burst += int(arg)
            elif verb == "rate":
                rate = float(arg)
                rate_from = (time.monotonic(), sent)
        if burst > 0:
            count = min(burst, 2000)
            publish(count)
            burst -= count
        elif rate > 0:
            due = int((time.monotonic() - rate_from[0]) * rate) - (sent - rate_from[1])
            if due > 0:
                publish(min(due, 5000))
            else:
                time.sleep(PUBLISH_TICK_S)
        else:
            time.sleep(PUBLISH_TICK_S)
        mode = "burst" if burst else "rate" if rate else "idle"
        if pending or mode != last_mode or time.monotonic() - reported >= 1.0:
            report(mode)
            reported, last_mode = time.monotonic(), mode
    publisher.close()
    report("stopped")
    checkpoints.stop()
    state.stop()
    return 0


# -- the run ---------------------------------------------------------------------------------
class SoakBench(GatewayBench):
    """The gateway benchmark's world and processes, plus the api, the audit notary and the
    publisher process."""

    def __init__(self, bootstrap: str, tmp: Path, communities: int) -> None:
        super().__init__(bootstrap, tmp, communities)
        self.communities = communities
        self.publisher: PublisherProcess | None = None
        self.api_url = ""

    def short_retention(self) -> None:
        """Create the busy topics before the hub does, with retention in minutes."""
        topics = self.state.topics
        resource = bench_resource().resource
        ensure_topics(
            kafka.admin_client(self.bootstrap),
            {
                topics.source(resource.department, resource.code): (SOURCE_PARTITIONS, RETENTION),
                topics.delivery: (self.config.kafka.delivery_partitions, RETENTION),
                topics.audit: (3, RETENTION),
                topics.audit_chain: (3, RETENTION),
            },
        )

    def start_all(self) -> None:
        self.start_hub()  # router, gateway
        config = self.tmp / "hub.toml"
        api_config = self.tmp / "api.toml"
        api_config.write_text(config.read_text() + _toml({"api": {"port": 0}}))
        self.procs["api"], line = _serve(api_config, "api", self.tmp / "api.log")
        found = re.search(r"api at (\S+)", line)
        self.api_url = found.group(1) if found else ""
        self.procs["audit"], _ = _serve(config, "audit", self.tmp / "audit.log")
        self.publisher = PublisherProcess(config, self.communities, self.tmp / "publisher.log")
        if not self.publisher.wait(lambda s: s.get("mode") == "idle", 120):
            raise RuntimeError(f"publisher did not start: {self.tmp / 'publisher.log'}")

    def pids(self, broker: int | None) -> dict[str, int]:
        assert self.publisher is not None and self.simulator is not None
        pids = {name: proc.pid for name, proc in self.procs.items()}
        pids["publisher"] = self.publisher.proc.pid
        pids["simulator"] = self.simulator.proc.pid
        if broker is not None:
            pids["broker"] = broker
        return pids

    def published(self) -> int:
        assert self.publisher is not None
        return int(self.publisher.status.get("published", 0))

    def delivered(self) -> int:
        assert self.simulator is not None
        return int(self.simulator.status.get("entries", 0))

    def drain(self, timeout: float) -> bool:
        """Stop publishing; wait until every delivery of what was published has arrived."""
        assert self.publisher is not None and self.simulator is not None
        asked = time.time()
        self.publisher.command("rate 0")
        if not self.publisher.wait(
            lambda s: s.get("mode") == "idle" and s.get("at", 0) > asked, 60
        ):
            raise RuntimeError(f"publisher did not stop: {self.publisher.status}")
        expected = self.published() * self.world.recipients_per_record
        return self.simulator.wait(lambda s: s.get("entries", 0) >= expected, timeout)

    def burst(self, count: int, timeout: float) -> float:
        """Publish ``count`` records at once; seconds until the subscribers hold them all."""
        assert self.publisher is not None and self.simulator is not None
        target = self.published() + count
        expected = target * self.world.recipients_per_record
        started = time.perf_counter()
        self.publisher.command(f"burst {count}")
        if not self.simulator.wait(lambda s: s.get("entries", 0) >= expected, timeout):
            raise RuntimeError(
                f"burst not delivered: {self.simulator.status} of {expected} "
                f"(published {self.publisher.status})"
            )
        return time.perf_counter() - started

    def api_alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.api_url + "/healthz", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        super().stop()


def run_soak(
    bootstrap: str,
    tmp: Path,
    minutes: float,
    quick: bool,
    communities: int,
    interval: float,
    broker: int | None,
) -> dict[str, Any]:
    bench = SoakBench(bootstrap, tmp, communities)
    per_record = bench.world.recipients_per_record
    result: dict[str, Any] = {
        "benchmark": "soak",
        "quick": quick,
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    seconds = minutes * 60
    warmup_s = seconds * WARMUP_SHARE
    sampler: Sampler | None = None
    try:
        bench.short_retention()
        bench.provision(pool_size=10)
        bench.start_all()
        bench.connect_all(timeout=300)
        subscribers = bench.gateway_stats()["streams"]
        _say(f"{subscribers} subscriber streams held; calibrating")

        # Calibration: the path's maximum on a backlog, after every recipient has its key.
        bench.burst(2000 if quick else 5000, 300)
        # The better of two backlogs: other work on the machine only ever slows one down.
        calibration = 10_000 if quick else 40_000
        bursts = [calibration / bench.burst(calibration, 600) for _ in range(CALIBRATIONS)]
        max_rate = max(bursts)
        rate = max_rate / 2
        _say(f"path maximum {max_rate:,.0f} records/s; soak at {rate:,.0f} records/s")
        result["config"] = {
            "minutes": minutes,
            "rate_records_per_s": round(rate),
            "calibrated_max_records_per_s": round(max_rate),
            "calibration_records": calibration,
            "calibration_records_per_s": [round(r) for r in bursts],
            "subscribers": subscribers,
            "recipients_per_record": per_record,
            "interval_s": interval,
            "warmup_s": round(warmup_s, 1),
            "hub_processes": list(HUB_PROCESSES),
        }

        # The soak.
        assert bench.publisher is not None and bench.simulator is not None
        published0, delivered0 = bench.published(), bench.delivered()
        sampler = Sampler(bench.pids(broker), interval)
        sampler.start()
        bench.publisher.command(f"rate {rate:.1f}")
        api_failures = 0
        deadline = sampler.started + seconds
        next_report = time.monotonic() + 60
        while (now := time.monotonic()) < deadline:
            dead = [n for n, p in bench.procs.items() if p.poll() is not None]
            if bench.publisher.proc.poll() is not None:
                dead.append("publisher")
            if bench.simulator.proc.poll() is not None:
                dead.append("simulator")
            if dead:
                raise RuntimeError(f"processes ended during the soak: {dead}")
            if now >= next_report:
                api_failures += 0 if bench.api_alive() else 1
                _say(
                    f"{(now - sampler.started) / 60:5.1f} min: published "
                    f"{bench.published() - published0:,}, delivered "
                    f"{bench.delivered() - delivered0:,}"
                )
                next_report += 60
            time.sleep(min(1.0, max(0.0, deadline - now)))
        soak_s = time.monotonic() - sampler.started
        published_soak = bench.published() - published0
        delivered_soak = bench.delivered() - delivered0
        drained = bench.drain(120 + 60 * minutes / 30)
        sampler.stop()

        published = bench.published()
        expected = published * per_record
        delivered = bench.delivered()
        status = bench.simulator.status
        result["rates"] = {
            "published_records_per_s": round(published_soak / soak_s, 1),
            "delivered_per_s": round(delivered_soak / soak_s, 1),
            "target_records_per_s": round(rate, 1),
        }
        result["accounting"] = {
            "published": published,
            "rejected": int(bench.publisher.status.get("rejected", 0)),
            "expected": expected,
            "delivered": delivered,
            "lost": max(0, expected - delivered),
            "extra": max(0, delivered - expected),
            "drained": drained,
            "misaddressed": status.get("misaddressed", 0),
            "reconnects": status.get("reconnects", 0),
            "errors": status.get("errors", {}),
            "api_probe_failures": api_failures,
        }
        result["gateway_streams_at_end"] = bench.gateway_stats()["streams"]
    finally:
        try:
            if sampler is not None and sampler.is_alive():
                sampler.stop()
        finally:
            bench.stop()

    assert sampler is not None
    end_s = max((row["t"][-1] for row in sampler.series.values() if row["t"]), default=0.0)
    measured = {name: growth(sampler.series[name], warmup_s, end_s) for name in sampler.series}
    result["growth"] = measured
    result["growth_pct"] = {name: m["growth_pct"] for name, m in measured.items()}
    hub_growth = [measured[n]["growth_pct"] for n in HUB_PROCESSES if n in measured]
    valid = [g for g in hub_growth if g is not None]
    result["max_growth_pct"] = max(valid) if valid else None
    result["series"] = {name: downsample(row) for name, row in sampler.series.items()}
    accounting = result["accounting"]
    result["goals"] = {
        "memory_growth_below_5pct": len(valid) == len(HUB_PROCESSES)
        and max(valid) < GROWTH_GOAL_PCT,
        "no_loss": accounting["delivered"] == accounting["expected"]
        and accounting["rejected"] == 0
        and accounting["misaddressed"] == 0,
    }
    result["goals_met"] = all(result["goals"].values())
    return result


def summary(result: dict[str, Any]) -> str:
    config, accounting, rates = result["config"], result["accounting"], result["rates"]
    lines = [
        f"soak: {config['minutes']:g} min at {config['rate_records_per_s']:,} records/s "
        f"(half of {config['calibrated_max_records_per_s']:,} calibrated), "
        f"{config['subscribers']:,} subscribers, {config['recipients_per_record']} per record",
        f"achieved: {rates['published_records_per_s']:,} records/s published, "
        f"{rates['delivered_per_s']:,} deliveries/s",
        f"delivered {accounting['delivered']:,} of {accounting['expected']:,} expected "
        f"(lost {accounting['lost']:,}, extra {accounting['extra']:,}, "
        f"misaddressed {accounting['misaddressed']})",
        f"RSS growth after a {config['warmup_s']:g} s warm-up (medians of the first and last "
        "fifth):",
    ]
    for name, m in result["growth"].items():
        if m.get("growth_pct") is None:
            lines.append(f"  {name:<10} too few samples")
            continue
        judged = "" if name in HUB_PROCESSES else "  (not judged)"
        lines.append(
            f"  {name:<10} {m['rss_start'] / 2**20:8.1f} MiB → {m['rss_end'] / 2**20:8.1f} MiB "
            f"{m['growth_pct']:+6.2f} %  threads {m['threads'][0]:g}→{m['threads'][1]:g}  "
            f"fds {m['fds'][0]:g}→{m['fds'][1]:g}{judged}"
        )
    lines.append(f"goals met: {result['goals_met']} {result['goals']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    quick = bool(args.quick)
    minutes = args.minutes or (3.0 if quick else 30.0)
    communities = args.communities or (3 if quick else 10)
    with bench_session("soak", args.bootstrap) as session:
        broker = session.broker_pid
        result = run_soak(
            session.bootstrap, session.tmp, minutes, quick, communities, args.interval, broker
        )
    session.finish(result, args.json)
    _say(summary(result))
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """The publisher process: ``python -m hub.bench.soak --config FILE --communities N``."""
    parser = argparse.ArgumentParser(prog="python -m hub.bench.soak")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--communities", type=int, required=True)
    args = parser.parse_args(argv)
    return publisher_main(args.config, args.communities)


if __name__ == "__main__":
    raise SystemExit(main())
