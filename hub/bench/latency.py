"""``govhub bench latency``: end-to-end latency at 10 %, 50 % and 90 % of the maximum rate.

The maximum of each side is measured first on a backlog (the raw loop and the router on the
standard mix); then records are published at each share of that side's maximum, stamped
with their ingest time (``govhub-ingested-at``, as a source connector stamps it), and a
read_committed subscriber-side reader records ingest → arrival: for the hub, the districts'
frames opened and read entry by entry (what the subscriber SDK does before its sink); for
the raw loop, the copied record. p50, p99 and p99.9 per load.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from hub.bench import emit, run_arguments
from hub.bench.exchange import (
    latency_hub_samples,
    latency_raw_samples,
    measure_raw,
    measure_router,
    preload,
    provision,
)
from hub.bench.machine import machine
from hub.bench.session import bench_session

SHARES = (0.1, 0.5, 0.9)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p99 and p99.9 (nearest rank) of latency samples in milliseconds."""
    if not samples:
        raise RuntimeError("no latency samples")
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]

    return {
        "p50_ms": round(rank(0.50), 1),
        "p99_ms": round(rank(0.99), 1),
        "p999_ms": round(rank(0.999), 1),
        "samples": len(ordered),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_arguments(parser, "short loads (about 2 minutes)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per load")


def run(args: argparse.Namespace) -> int:
    quick = bool(args.quick)
    seconds = args.seconds or (8.0 if quick else 30.0)
    warmup = 2.0 if quick else 5.0
    records = 100_000 if quick else 400_000
    result: dict[str, Any] = {
        "benchmark": "latency",
        "quick": quick,
        "seconds_per_load": seconds,
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loads": [],
    }
    with bench_session("latency", args.bootstrap) as session:
        bootstrap, tmp = session.bootstrap, session.tmp
        broker = session.broker_pid
        inst = provision(bootstrap, tmp, {}, 5000)
        preload(inst, records)
        raw_max = measure_raw(inst, f"{inst.config.kafka.topic_prefix}raw-max", broker)
        hub_max = measure_router(inst, tmp, broker)
        result["max_records_per_s"] = {
            "raw": round(raw_max["records_per_s"]),
            "hub": round(hub_max["records_per_s"]),
        }
        for share in SHARES:
            raw_rate = raw_max["records_per_s"] * share
            hub_rate = hub_max["records_per_s"] * share
            raw = percentiles(latency_raw_samples(inst, raw_rate, seconds, warmup))
            hub = percentiles(latency_hub_samples(inst, tmp, hub_rate, seconds, warmup))
            raw["rate"], hub["rate"] = round(raw_rate), round(hub_rate)
            result["loads"].append({"share": share, "raw": raw, "hub": hub})
            print(
                f"{share:.0%}: hub p50/p99/p99.9 {hub['p50_ms']}/{hub['p99_ms']}/"
                f"{hub['p999_ms']} ms, raw {raw['p50_ms']}/{raw['p99_ms']}/{raw['p999_ms']} ms",
                file=sys.stderr,
                flush=True,
            )
            if args.json is not None:
                emit(result, args.json)
    return session.finish(result, args.json)
