"""The Markdown summary of a ``govhub bench all`` run: headline ratios, machine, date.

It reads only the JSON results the run wrote, so the same summary can be rendered again
from a recorded directory (``python -m hub.bench.summary DIR``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Headline:
    """One row of the summary: a measured figure, its baseline and their ratio."""

    scenario: str
    measured: str
    baseline: str
    ratio: float | None


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    """Every ``<name>.json`` in ``folder`` by name (``run.json`` holds the run itself)."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return results


def _rate(value: Any, unit: str = "records/s") -> str:
    return f"{value:,.0f} {unit}" if isinstance(value, int | float) else "—"


def headlines(results: dict[str, dict[str, Any]]) -> list[Headline]:
    rows: list[Headline] = []
    peers = results.get("peers", {})
    runs = peers.get("runs", {})
    ratios = peers.get("ratios", {})

    def rate(name: str) -> Any:
        return runs.get(name, {}).get("records_per_s")

    if ratios:
        rows += [
            Headline(
                "hub router, 1 recipient, no masking (AES-256-GCM, transactions) vs "
                "MirrorMaker 2 (like for like)",
                _rate(rate("router_single")),
                f"MirrorMaker 2 {_rate(rate('mirrormaker2'))}",
                ratios.get("hub_vs_mirrormaker2_like_for_like"),
            ),
            Headline(
                "same vs MirrorMaker 2 tuned (3 tasks, large batches)",
                _rate(rate("router_single")),
                f"MirrorMaker 2 tuned {_rate(rate('mirrormaker2_tuned'))}",
                ratios.get("hub_vs_mirrormaker2_tuned_like_for_like"),
            ),
            Headline(
                "same, frames not encrypted",
                _rate(rate("router_single_plaintext")),
                f"MirrorMaker 2 {_rate(rate('mirrormaker2'))}",
                ratios.get("hub_unencrypted_vs_mirrormaker2_like_for_like"),
            ),
            Headline(
                "hub router, standard mix (4 recipients, 3 views) vs raw loop",
                _rate(rate("router_standard")),
                f"raw consume→produce {_rate(rate('raw'))}",
                ratios.get("hub_vs_raw_standard_mix"),
            ),
            Headline(
                "hub router, standard mix vs one Kafka Connect SMT view "
                "(Filter + ReplaceField + MaskField → FileStreamSink)",
                _rate(rate("router_standard")),
                f"Connect SMT {_rate(rate('connect_smt_view'))}",
                ratios.get("hub_standard_vs_connect_smt_view"),
            ),
            Headline(
                "MirrorMaker 2 vs raw loop",
                _rate(rate("mirrormaker2")),
                f"raw consume→produce {_rate(rate('raw'))}",
                ratios.get("mirrormaker2_vs_raw"),
            ),
        ]
    scaling = results.get("scaling", {})
    for name, curve in scaling.get("curves", {}).items():
        points = curve.get("points", [])
        if len(points) >= 2:
            lo, hi = points[0], points[-1]
            measured = f"{_rate(hi.get('records_per_s'))} at {hi['x']}"
            if "hub_vs_raw" in hi:  # a ratio of ratios: hub ÷ raw here over the first point
                measured = f"hub ÷ raw {hi['hub_vs_raw']:.2f} at {hi['x']}"
                baseline = f"hub ÷ raw {lo['hub_vs_raw']:.2f} at {lo['x']}"
            elif "raw_records_per_s" in hi:  # the raw loop on the same records
                baseline = f"raw {_rate(hi['raw_records_per_s'])} at {hi['x']}"
            else:
                baseline = f"{_rate(lo.get('records_per_s'))} at {lo['x']}"
            rows.append(
                Headline(
                    f"scaling: {curve.get('label', name)} {lo['x']} → {hi['x']}",
                    measured,
                    baseline,
                    hi.get("ratio"),
                )
            )
    latency = results.get("latency", {})
    for load in latency.get("loads", []):
        hub, raw = load.get("hub", {}), load.get("raw", {})
        if "p99_ms" in hub and "p99_ms" in raw:
            rows.append(
                Headline(
                    f"p99 latency at {load['share']:.0%} of max rate",
                    f"hub {hub['p99_ms']:.1f} ms",
                    f"raw {raw['p99_ms']:.1f} ms",
                    round(hub["p99_ms"] / raw["p99_ms"], 3) if raw["p99_ms"] else None,
                )
            )
    cost = results.get("resources", {}).get("sizing", {})
    if cost:
        rows.append(
            Headline(
                "cores per 100k records/s (router + broker), standard mix",
                f"{cost.get('hub_cores_per_100k', 0):.2f}"
                f" + {cost.get('broker_cores_per_100k', 0):.2f}",
                f"raw {cost.get('raw_cores_per_100k', 0):.2f}",
                cost.get("ratio_vs_raw"),
            )
        )
    exchange = results.get("exchange", {})
    if isinstance(exchange.get("ratio"), int | float):
        rows.append(
            Headline(
                "`govhub bench exchange`: router, standard mix vs raw loop",
                _rate(exchange.get("hub_records_per_s")),
                f"raw {_rate(exchange.get('baseline_records_per_s'))}",
                exchange["ratio"],
            )
        )
    gateway = results.get("gateway", {})
    if isinstance(gateway.get("delivery_ratio"), int | float):
        rows.append(
            Headline(
                f"`govhub bench gateway`: {gateway.get('subscribers', '?')} streams, "
                "deliveries vs router output",
                _rate(gateway.get("deliveries_per_s"), "deliveries/s"),
                f"router {_rate(gateway.get('router_output_per_s'), 'deliveries/s')}",
                gateway["delivery_ratio"],
            )
        )
    # A peer that did not run leaves its row out rather than an empty ratio.
    return [row for row in rows if row.ratio is not None]


def render(results: dict[str, dict[str, Any]], plots: list[str] | None = None) -> str:
    run = results.get("run", {})
    mach: dict[str, Any] = run.get("machine") or next(
        (r["machine"] for r in results.values() if isinstance(r.get("machine"), dict)), {}
    )
    lines = [
        "# GovHub benchmarks: summary",
        "",
        f"- date: {run.get('at', 'unknown')}",
        f"- machine: {mach.get('cpu', 'unknown')}, {mach.get('cores', '?')} cores",
        f"- run: `govhub bench all{' --quick' if run.get('quick') else ''}`, "
        f"{run.get('seconds', '?')} s wall time",
        "",
        "Every ratio is to a baseline measured in the same run on the same broker; absolute",
        "numbers belong to this machine only.",
        "",
        "| scenario | measured | baseline | ratio |",
        "|---|---|---|---|",
    ]
    for row in headlines(results):
        ratio = f"{row.ratio:.2f}" if isinstance(row.ratio, int | float) else "—"
        lines.append(f"| {row.scenario} | {row.measured} | {row.baseline} | {ratio} |")
    status = run.get("scenarios", {})
    if status:
        lines += ["", "| scenario | status | seconds |", "|---|---|---|"]
        for name, info in status.items():
            lines.append(f"| {name} | {info.get('status')} | {info.get('seconds', '—')} |")
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in plots)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path("benchmarks/results")
    sys.stdout.write(render(load_results(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
