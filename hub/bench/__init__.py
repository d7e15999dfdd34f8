"""``govhub bench``: the benchmarks, runnable from an installed hub.

Each benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> int``; the
scripts in ``benchmarks/`` are thin wrappers around the same modules.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path
from typing import Any

# name → (module, help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "exchange": ("hub.bench.exchange", "router vs a raw consume→produce loop"),
    "gateway": ("hub.bench.gateway", "10,000 subscriber streams on one gateway process"),
    "data-service": (
        "hub.bench.dataservice",
        "key lookups and verifications vs a plain aiohttp handler, rebuild time",
    ),
    "peers": (
        "hub.bench.peers",
        "router vs MirrorMaker 2, a Kafka Connect SMT pipeline and the raw loop",
    ),
    "scaling": (
        "hub.bench.scaling",
        "router throughput vs subscribers, recipients, record size, routers, brokers",
    ),
    "latency": ("hub.bench.latency", "end-to-end p50/p99/p99.9 at 10, 50, 90 % of max rate"),
    "soak": (
        "hub.bench.soak",
        "the whole exchange path at half load for 30 minutes: memory flat, nothing lost",
    ),
    "all": ("hub.bench.all", "every benchmark in one run: JSON, PNG plots, Markdown summary"),
}


def register(sub: Any) -> None:
    bench = sub.add_parser("bench", help="run a benchmark (results as JSON)")
    which = bench.add_subparsers(dest="benchmark", required=True)
    for name, (module_name, help_text) in BENCHMARKS.items():
        parser = which.add_parser(name, help=help_text)
        parser.set_defaults(func=_runner(module_name), bench_module=module_name)
        importlib.import_module(module_name).add_arguments(parser)


def _runner(module_name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        return int(importlib.import_module(module_name).run(args))

    return run


def run_arguments(parser: argparse.ArgumentParser, quick_help: str) -> None:
    """``--quick``, ``--json FILE`` and ``--bootstrap``, the options every benchmark has."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        help="broker to use (default: KAFKA_BOOTSTRAP_SERVERS, else a local broker)",
    )


def emit(result: dict[str, Any], path: Path | None) -> None:
    """Print a benchmark's result as JSON, and write it to ``path`` when given."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
