"""``govhub bench scaling``: how the router's throughput moves with one parameter at a time.

Curves, each point a fresh hub installation on the same broker with its own backlog, each
ratio taken against a baseline measured in the same run:

- ``subscribers``: 10 → 10,000 subscriptions (the standard mix's tree at four sizes);
  ratio to the 10-subscriber point;
- ``recipients``: 1 → 8 recipients per record (departments each subscribed for the whole
  district under one projected view); ratio to 1 recipient;
- ``record_size``: ~100 B → 4 KB Avro records (the remark field shortened or padded);
  ratio of the router to the raw loop at the same size;
- ``routers``: 1 → 2 router processes in one consumer group; ratio to 1 process;
- ``brokers``: 1 broker vs 3 brokers with replication factor 3 and ``min.insync.replicas=2``
  (a second cluster this bench starts); ratio hub ÷ raw on each, the point the ratio of
  the two.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from hub.bench import emit, run_arguments
from hub.bench.all import discard, local_kafka
from hub.bench.exchange import (
    Installation,
    measure_raw,
    measure_router,
    preload,
    provision,
)
from hub.bench.machine import machine
from hub.bench.session import bench_session
from hub.bench.world import DEPARTMENT_FIELDS, BenchWorld, _party, _sub, bench_resource
from hub.parties.model import PartyKind
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec

SUBSCRIBER_WORLDS: dict[int, dict[str, int]] = {
    10: {"districts": 1, "streets_per_district": 2, "communities_per_street": 3, "departments": 1},
    100: {
        "districts": 2,
        "streets_per_district": 4,
        "communities_per_street": 10,
        "departments": 2,
    },
    1000: {},
    10000: {"communities_per_street": 99},
}


def fanout_world(resource: str, recipients: int = 1) -> BenchWorld:
    """``recipients`` departments each subscribed for one district under one projected view;
    every record falls in that district, so each reaches exactly ``recipients`` parties."""
    district = "110101000000"
    parties, subs = [], []
    for k in range(1, recipients + 1):
        parties.append(_party(f"dept{k}", PartyKind.DEPARTMENT, "110100000000", None))
        subs.append(_sub(resource, f"dept{k}", district, "参保核查", fields=DEPARTMENT_FIELDS))
    codes = [f"110101{s:03d}{c:03d}" for s in range(1, 11) for c in range(1, 11)]
    return BenchWorld(parties, subs, codes, recipients)


def resize_pool(inst: Installation, target_bytes: int) -> float:
    """Rewrite the installation's record pool so records are about ``target_bytes`` of Avro
    (the ``remark`` field shortened or padded, ``address`` emptied below 300 bytes); returns
    the mean size reached."""
    sample = bench_resource()
    codec = AvroCodec(sample.schema_json)
    from hub.bench.world import record_pool

    records = record_pool(inst.world.communities, len(inst.pool))
    pool = []
    sizes = []
    for r in records:
        r["remark"] = ""
        if target_bytes < 300:
            r["address"] = ""
        base = len(codec.encode(r))
        r["remark"] = "x" * max(0, target_bytes - base - 2)
        value = frame(inst.schema_id, codec.encode(r))
        sizes.append(len(value))
        pool.append((value, r["region_code"].encode(), r["id_card"].encode()))
    inst.pool = pool
    return sum(sizes) / len(sizes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_arguments(parser, "fewer points, smaller backlogs")
    parser.add_argument("--records", type=int, default=None, help="source records per point")
    parser.add_argument(
        "--curves",
        default="subscribers,recipients,record_size,routers,brokers",
        help="comma-separated curves to measure",
    )


def _point(x: Any, rate: float, base: float, **extra: Any) -> dict[str, Any]:
    return {
        "x": x,
        "records_per_s": round(rate),
        "ratio": round(rate / base, 3) if base else None,
        **extra,
    }


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    quick = bool(args.quick)
    # The rate is taken between the router's first and last commits (a transaction holds
    # at most 50,000 records): a fast point needs a backlog of several transactions.
    records = args.records or (250_000 if quick else 500_000)
    curves_wanted = {c.strip() for c in args.curves.split(",") if c.strip()}
    result: dict[str, Any] = {
        "benchmark": "scaling",
        "quick": quick,
        "records_per_point": records,
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "curves": {},
    }
    curves: dict[str, Any] = result["curves"]
    with bench_session("scaling", args.bootstrap) as session:
        bootstrap, tmp = session.bootstrap, session.tmp
        broker = session.broker_pid

        def emit_partial() -> None:
            # Written after every curve: a run stopped by its time box keeps what it measured.
            result["seconds"] = session.seconds()
            if args.json is not None:
                emit(result, args.json)

        for name in ("subscribers", "recipients", "record_size", "routers", "brokers"):
            if name not in curves_wanted:
                continue
            try:
                CURVES[name](bootstrap, tmp, broker, records, quick, curves)
            except Exception as exc:  # recorded; the other curves still run
                curves.setdefault(name, {"points": []})["error"] = str(exc)
                _say(f"{name}: {exc}")
            emit_partial()
    return session.finish(result, args.json)


Curves = dict[str, Any]


def subscribers_curve(
    bootstrap: str, tmp: Path, broker: int | None, records: int, quick: bool, curves: Curves
) -> None:
    points: list[dict[str, Any]] = []
    curves["subscribers"] = {
        "label": "subscriptions",
        "baseline": "the 10-subscriber point",
        "points": points,
    }
    for size in [10, 1000, 10000] if quick else list(SUBSCRIBER_WORLDS):
        inst = provision(bootstrap, tmp, SUBSCRIBER_WORLDS[size], 5000)
        preload(inst, records)
        rate = measure_router(inst, tmp, broker)["records_per_s"]
        base = points[0]["records_per_s"] if points else rate
        points.append(_point(len(inst.world.subscriptions), rate, base))
        _say(f"subscribers {len(inst.world.subscriptions)}: {rate:,.0f} records/s")


def recipients_curve(
    bootstrap: str, tmp: Path, broker: int | None, records: int, quick: bool, curves: Curves
) -> None:
    points: list[dict[str, Any]] = []
    curves["recipients"] = {
        "label": "recipients per record",
        "baseline": "1 recipient",
        "points": points,
    }
    for k in [1, 4, 8] if quick else [1, 2, 4, 8]:
        inst = provision(bootstrap, tmp, {"recipients": k}, 2000, world=fanout_world)
        preload(inst, records)
        rate = measure_router(inst, tmp, broker)["records_per_s"]
        base = points[0]["records_per_s"] if points else rate
        points.append(_point(k, rate, base, deliveries_per_s=round(rate * k)))
        _say(f"recipients {k}: {rate:,.0f} records/s")


def record_size_curve(
    bootstrap: str, tmp: Path, broker: int | None, records: int, quick: bool, curves: Curves
) -> None:
    points: list[dict[str, Any]] = []
    curves["record_size"] = {
        "label": "record bytes (Avro, framed)",
        "baseline": "the raw loop at the same size",
        "points": points,
    }
    for target in [100, 1000, 4000] if quick else [100, 300, 1000, 4000]:
        inst = provision(bootstrap, tmp, {"departments": 5}, 2000)
        mean = resize_pool(inst, target)
        # 4 KB records: half as many, still several transactions.
        preload(inst, records // 2 if target > 2000 else records)
        raw = measure_raw(inst, f"{inst.config.kafka.topic_prefix}raw-out", broker)
        hub = measure_router(inst, tmp, broker)
        points.append(
            _point(
                round(mean),
                hub["records_per_s"],
                raw["records_per_s"],
                raw_records_per_s=round(raw["records_per_s"]),
            )
        )
        _say(
            f"record {mean:.0f} B: hub {hub['records_per_s']:,.0f}, raw {raw['records_per_s']:,.0f}"
        )


def routers_curve(
    bootstrap: str, tmp: Path, broker: int | None, records: int, quick: bool, curves: Curves
) -> None:
    points: list[dict[str, Any]] = []
    curves["routers"] = {
        "label": "router processes",
        "baseline": "1 process",
        "points": points,
        "note": f"{os.cpu_count()} cores shared with the broker and the measuring process",
    }
    for n in (1, 2):
        inst = provision(bootstrap, tmp, {}, 5000)
        preload(inst, records * 2)
        rate = measure_router(inst, tmp, broker, processes=n)["records_per_s"]
        base = points[0]["records_per_s"] if points else rate
        points.append(_point(n, rate, base))
        _say(f"router processes {n}: {rate:,.0f} records/s")


def brokers_curve(
    bootstrap: str, tmp: Path, broker: int | None, records: int, quick: bool, curves: Curves
) -> None:
    """Hub ÷ raw on the given single broker, then on a 3-broker cluster with replication
    factor 3; the point's ratio is the 3-broker ratio over the 1-broker one."""
    ratios: dict[int, tuple[float, float]] = {}
    single = provision(bootstrap, tmp, {}, 5000)
    preload(single, records)
    raw = measure_raw(single, f"{single.config.kafka.topic_prefix}raw-out", broker)
    hub = measure_router(single, tmp, broker)
    ratios[1] = (hub["records_per_s"], raw["records_per_s"])
    cluster = local_kafka("3n", nodes=3, heap_mb=512)
    try:
        three = cluster.up(timeout=180)
        inst = provision(three, tmp, {}, 5000)
        preload(inst, records)
        raw3 = measure_raw(inst, f"{inst.config.kafka.topic_prefix}raw-out", None)
        hub3 = measure_router(inst, tmp, None)
        ratios[3] = (hub3["records_per_s"], raw3["records_per_s"])
    finally:
        discard(cluster)
    base = ratios[1][0] / ratios[1][1]
    points = []
    for n, (h, r) in ratios.items():
        points.append(
            {
                "x": n,
                "records_per_s": round(h),
                "raw_records_per_s": round(r),
                "hub_vs_raw": round(h / r, 3),
                "ratio": round((h / r) / base, 3),
            }
        )
        _say(f"{n} broker(s): hub {h:,.0f}, raw {r:,.0f}")
    curves["brokers"] = {
        "label": "brokers (replication factor = brokers)",
        "baseline": "hub ÷ raw on 1 broker",
        "points": points,
    }


CURVES = {
    "subscribers": subscribers_curve,
    "recipients": recipients_curve,
    "record_size": record_size_curve,
    "routers": routers_curve,
    "brokers": brokers_curve,
}
