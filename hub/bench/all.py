"""``govhub bench all``: every benchmark in one run on one broker; JSON, plots, summary.

Each scenario runs as ``python -m hub.cli bench <name> --json DIR/<name>.json`` in its own
process tree against the broker this run starts (ports from 29700, state under
``/tmp/bench-kafka-all-*``), time-boxed; a scenario that fails or overruns is recorded as
such and the run goes on. Then ``resources.json`` (CPU per million deliveries, RSS per role,
the sizing figure) is derived from the recorded runs, the plots are drawn and
``summary.md`` is written. ``run.json`` holds the machine, the date and each scenario's
status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.bench import emit
from hub.bench.machine import machine
from hub.bench.plots import render_all
from hub.bench.summary import load_results, render
from hub.localkafka import LocalKafka, find_free_base_port

BASE_PORT = 29700  # the benchmarks' brokers listen from here upward


def local_kafka(name: str, nodes: int = 1, heap_mb: int | None = None) -> LocalKafka:
    """A fresh local cluster for one benchmark: state under ``/tmp/bench-kafka-<name>-*``,
    ports free in 29700–29799."""
    state = Path(tempfile.mkdtemp(prefix=f"bench-kafka-{name}-", dir="/tmp"))
    port = find_free_base_port(nodes, low=BASE_PORT, high=BASE_PORT + 100)
    return LocalKafka(state, nodes=nodes, base_port=port, heap_mb=heap_mb)


def discard(local: LocalKafka) -> None:
    """Stop a benchmark's cluster and delete its state: a full run leaves tens of GB."""
    try:
        local.down()
    finally:
        shutil.rmtree(local.state_dir, ignore_errors=True)


@dataclass(frozen=True)
class Scenario:
    name: str  # the ``govhub bench`` name; its JSON is ``<name>.json``
    quick_args: tuple[str, ...]
    full_args: tuple[str, ...]
    quick_box_s: float
    full_box_s: float


SCENARIOS = (
    Scenario("peers", ("--quick",), (), 240, 1800),
    Scenario("scaling", ("--quick",), (), 420, 3600),
    Scenario("latency", ("--quick",), (), 150, 900),
    Scenario("exchange", ("--quick", "--only", "throughput"), (), 90, 1200),
    Scenario("gateway", ("--quick", "--communities", "30"), (), 150, 900),
    Scenario("data-service", ("--quick",), (), 90, 600),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="time-boxed, under 15 minutes")
    parser.add_argument("--out", type=Path, required=True, help="folder for JSON, PNG, summary")
    parser.add_argument(
        "--only", default=None, help="comma-separated scenarios (default: all of them)"
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        help="broker to use (default: KAFKA_BOOTSTRAP_SERVERS, else a local broker)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write run.json here (default: --out)"
    )


def run_scenario(
    scenario: Scenario, quick: bool, out: Path, bootstrap: str, logs: Path
) -> dict[str, Any]:
    box = scenario.quick_box_s if quick else scenario.full_box_s
    command = [sys.executable, "-m", "hub.cli", "bench", scenario.name]
    command += list(scenario.quick_args if quick else scenario.full_args)
    command += ["--json", str(out / f"{scenario.name}.json"), "--bootstrap", bootstrap]
    started = time.perf_counter()
    log = logs / f"{scenario.name}.log"
    print(f"== {scenario.name} (time box {box:.0f} s)", file=sys.stderr, flush=True)
    with log.open("wb") as sink:
        # Its own session, so a scenario that overruns is stopped with everything it started.
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(box)
            status = "ok" if code == 0 else f"failed (exit {code}, see {log.name})"
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            status = f"stopped after its time box of {box:.0f} s"
    seconds = round(time.perf_counter() - started, 1)
    print(f"   {status} in {seconds} s", file=sys.stderr, flush=True)
    return {"status": status, "seconds": seconds, "log": log.name}


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def derive_resources(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """CPU seconds per million deliveries and RSS per role from the peers run; the
    ``cores per 100k records/s`` sizing figure of ``docs/operations.md``."""
    peers = results.get("peers")
    if not peers:
        return None
    runs = peers.get("runs", {})
    deliveries_per_record = {
        "raw": 1,
        "router_standard": 4,
        "router_single": 1,
        "router_single_plaintext": 1,
        "mirrormaker2": 1,
        "mirrormaker2_tuned": 1,
        "connect_smt_view": 1,
    }
    per_million: dict[str, dict[str, float]] = {}
    rss: dict[str, float] = {}
    for name, fanout in deliveries_per_record.items():
        r = runs.get(name)
        if not r or not r.get("records_per_s"):
            continue
        deliveries = r["records_per_s"] * fanout
        own = r.get("cpu_hub", r.get("cpu_peer"))
        row: dict[str, float] = {}
        if isinstance(own, int | float):
            row["process"] = round(own / deliveries * 1e6, 2)
        if isinstance(r.get("cpu_broker"), int | float):
            row["broker"] = round(r["cpu_broker"] / deliveries * 1e6, 2)
        if row:
            per_million[name] = row
        if r.get("rss_bytes"):
            rss[name] = round(r["rss_bytes"] / 2**20, 1)
    if peers.get("broker_rss_bytes"):
        rss["broker"] = round(peers["broker_rss_bytes"] / 2**20, 1)
    gateway = results.get("gateway", {})
    if gateway.get("rss_bytes_per_idle_subscriber") and gateway.get("subscribers"):
        rss["gateway (all streams idle)"] = round(
            gateway["rss_bytes_per_idle_subscriber"] * gateway["subscribers"] / 2**20, 1
        )
    result: dict[str, Any] = {
        "benchmark": "resources",
        "machine": peers.get("machine"),
        "at": peers.get("at"),
        "cpu_s_per_million": per_million,
        "rss_mb": rss,
    }
    std, raw = runs.get("router_standard", {}), runs.get("raw", {})
    if std.get("cpu_hub") and raw.get("cpu_hub") and std.get("records_per_s"):
        hub_cores = std["cpu_hub"] / std["records_per_s"] * 1e5
        raw_cores = raw["cpu_hub"] / raw["records_per_s"] * 1e5
        result["sizing"] = {
            "hub_cores_per_100k": round(hub_cores, 3),
            "broker_cores_per_100k": round(
                std.get("cpu_broker", 0) / std["records_per_s"] * 1e5, 3
            ),
            "raw_cores_per_100k": round(raw_cores, 3),
            "ratio_vs_raw": round(hub_cores / raw_cores, 3),
            "note": "router process CPU per 100,000 source records/s on the standard mix "
            "(400,000 deliveries/s); the broker's share measured in the same window",
        }
    return result


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    wanted = {s.strip() for s in args.only.split(",")} if args.only else None
    started = time.perf_counter()
    local = None
    bootstrap = args.bootstrap
    if not bootstrap:
        local = local_kafka("all")
        bootstrap = local.up()
    run_info: dict[str, Any] = {
        "benchmark": "all",
        "quick": bool(args.quick),
        "machine": machine(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenarios": {},
    }
    try:
        for scenario in SCENARIOS:
            if wanted is not None and scenario.name not in wanted:
                continue
            run_info["scenarios"][scenario.name] = run_scenario(
                scenario, bool(args.quick), out, bootstrap, logs
            )
    finally:
        if local is not None:
            discard(local)
    results = load_results(out)
    resources = derive_resources(results)
    if resources is not None:
        (out / "resources.json").write_text(json.dumps(resources, indent=2) + "\n")
        results["resources"] = resources
    run_info["seconds"] = round(time.perf_counter() - started, 1)
    results["run"] = run_info
    try:
        plots = render_all(results, out)
    except RuntimeError as exc:  # matplotlib missing: JSON and summary still written
        print(exc, file=sys.stderr)
        plots = []
    run_info["plots"] = plots
    emit(run_info, args.json or out / "run.json")
    (out / "summary.md").write_text(render(results, plots), encoding="utf-8")
    print(f"summary: {out / 'summary.md'}", file=sys.stderr)
    return 0
