"""The native splice vs fastavro for one subscriber view, in microseconds per record.

The record is the benchmark resource (低保 widened to ~300 bytes: 11 fields) and the view
is what a community (社区) receives: every field, with id_card, name, address, phone and
bank_card masked. Three ways to produce the view's bytes from the source bytes:

- ``native``: ``hub.policy.splice`` (the C splice: no decoding);
- ``fastavro``: ``fastavro.schemaless_reader`` + ``CompiledView.apply`` +
  ``fastavro.schemaless_writer``, called directly;
- ``fastavro_codec``: the same through ``AvroCodec`` (what the router's Python path runs).

Each runs over the same pool of distinct records; rounds are interleaved and the best round
counts, so that a burst of other work on the shared machine does not decide the ratio.

    python benchmarks/splice_vs_fastavro.py [--records 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import orjson

from hub.bench.machine import machine
from hub.bench.world import bench_resource, build_world, record_pool
from hub.policy.splice import compile_splice
from hub.policy.views import compile_view
from hub.registry.schemas import AvroCodec
from hub.router.routing import compile_routing_table

RESULTS = Path(__file__).parent / "results"


def per_record_us(fn: Callable[[bytes], object], payloads: list[bytes], min_s: float) -> float:
    """Microseconds per call of ``fn`` over ``payloads``, repeated for at least ``min_s``."""
    loops = 0
    start = time.perf_counter()
    while True:
        for payload in payloads:
            fn(payload)
        loops += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return elapsed / (loops * len(payloads)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3, help="per way and round")
    args = parser.parse_args()

    resource = bench_resource()
    world = build_world(resource.resource.code, 2, 2, 2, 1)
    parties = {p.id: p for p in world.parties}
    table = compile_routing_table(resource.resource, world.subscriptions, parties)
    view = next(r.view for r in table.routes if parties[r.recipient].is_grassroots)
    masked = [name for name, _ in view.masking]

    writer = AvroCodec(resource.schema_json)
    payloads = [writer.encode(r) for r in record_pool(world.communities, args.records)]
    compiled = compile_view(view, resource.schema_json)
    view_codec = AvroCodec(compiled.schema_json)
    native = compile_splice(view, resource.schema_json)
    if native is None:
        raise SystemExit("hub.policy._splice is not built: python setup.py build_ext --inplace")
    program = native.program

    writer_parsed = fastavro.parse_schema(orjson.loads(resource.schema_json))
    view_parsed = fastavro.parse_schema(orjson.loads(compiled.schema_json))
    apply = compiled.apply

    def with_fastavro(payload: bytes) -> bytes:
        record: Any = fastavro.schemaless_reader(io.BytesIO(payload), writer_parsed, None)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, view_parsed, apply(record))
        return out.getvalue()

    def with_codec(payload: bytes) -> bytes:
        return view_codec.encode(apply(writer.decode(payload)))

    ways: dict[str, Callable[[bytes], object]] = {
        "native": program,
        "fastavro": with_fastavro,
        "fastavro_codec": with_codec,
    }
    for payload in payloads:  # the same bytes, every way
        assert program(payload) == with_fastavro(payload) == with_codec(payload)

    best = {name: float("inf") for name in ways}
    for _ in range(args.rounds):
        for name, fn in ways.items():
            best[name] = min(best[name], per_record_us(fn, payloads, args.seconds))

    size = sum(map(len, payloads)) / len(payloads)
    out_size = sum(len(program(p)) for p in payloads) / len(payloads)
    for name, us in best.items():
        print(f"{name:15s} {us:8.3f} µs/record  ({best['fastavro'] / us:5.1f}x fastavro)")
    summary = {
        "benchmark": "splice_vs_fastavro",
        "resource": resource.resource.code,
        "view": {"fields": "all", "masked": masked},
        "record_fields": len(writer.field_names),
        "record_bytes_mean": round(size, 1),
        "view_bytes_mean": round(out_size, 1),
        "records": len(payloads),
        "method": f"best of {args.rounds} interleaved rounds, >= {args.seconds} s per way "
        f"and round, over {len(payloads)} distinct records",
        "us_per_record": {name: round(us, 3) for name, us in best.items()},
        "speedup_vs_fastavro": round(best["fastavro"] / best["native"], 1),
        "speedup_vs_fastavro_codec": round(best["fastavro_codec"] / best["native"], 1),
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "splice_vs_fastavro.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
