"""PNG plots of a ``govhub bench all`` run, one figure per file, from its JSON results.

Needs matplotlib (``pip install 'govhub[bench]'``); drawn with the Agg backend, so no
display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("plots need matplotlib: pip install 'govhub[bench]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(fig: Any, text: str, mach: dict[str, Any]) -> None:
    fig.suptitle(text, fontsize=11)
    fig.text(
        0.99,
        0.01,
        f"{mach.get('cpu', '?')}, {mach.get('cores', '?')} cores",
        ha="right",
        fontsize=7,
        color="grey",
    )


def throughput_ratios(peers: dict[str, Any], out: Path) -> Path | None:
    runs = peers.get("runs", {})
    raw = runs.get("raw", {}).get("records_per_s")
    if not raw:
        return None
    labels = {
        "raw": "raw loop",
        "router_standard": "hub,\nstandard mix",
        "router_single": "hub,\n1 recipient",
        "router_single_plaintext": "hub, 1 recip.,\nunencrypted",
        "mirrormaker2": "MirrorMaker 2",
        "mirrormaker2_tuned": "MirrorMaker 2,\ntuned",
        "connect_smt_view": "Connect SMT\n(one view)",
    }
    names = [n for n in labels if runs.get(n, {}).get("records_per_s")]
    values = [runs[n]["records_per_s"] / raw for n in names]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    bars = ax.bar([labels[n] for n in names], values, color="#4c72b0")
    for bar, value, name in zip(bars, values, names, strict=True):
        ax.annotate(
            f"{value:.2f}\n{runs[name]['records_per_s']:,.0f}/s",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_ylabel("records/s ÷ raw loop (same run)")
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylim(0, max(values) * 1.25)
    _title(fig, "Throughput against the raw consume→produce loop", peers.get("machine", {}))
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def scaling_curve(name: str, curve: dict[str, Any], mach: dict[str, Any], out: Path) -> Path | None:
    points = [p for p in curve.get("points", []) if p.get("ratio") is not None]
    if len(points) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [str(p["x"]) for p in points]
    ax.plot(xs, [p["ratio"] for p in points], marker="o", color="#4c72b0")
    for x, p in zip(xs, points, strict=True):
        ax.annotate(f"{p['records_per_s']:,.0f}/s", (x, p["ratio"]), fontsize=7, va="bottom")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel(curve.get("label", name))
    ax.set_ylabel(f"ratio to {curve.get('baseline', 'the first point')}", fontsize=8)
    ax.set_ylim(bottom=0)
    _title(fig, f"Scaling: {curve.get('label', name)}", mach)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def latency_percentiles(latency: dict[str, Any], out: Path) -> Path | None:
    loads = latency.get("loads", [])
    if not loads:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(loads), figsize=(3.2 * len(loads), 4), sharey=True)
    if len(loads) == 1:
        axes = [axes]
    for ax, load in zip(axes, loads, strict=True):
        keys = ("p50_ms", "p99_ms", "p999_ms")
        width = 0.38
        for offset, (who, color) in enumerate((("raw", "#999999"), ("hub", "#4c72b0"))):
            values = [load.get(who, {}).get(k, 0) for k in keys]
            ax.bar(
                [i + (offset - 0.5) * width for i in range(len(keys))],
                values,
                width,
                label=who,
                color=color,
            )
        ax.set_xticks(range(len(keys)), ["p50", "p99", "p99.9"])
        ax.set_title(f"{load['share']:.0%} of max rate", fontsize=9)
        ax.set_yscale("log")
    axes[0].set_ylabel("ingest → subscriber, ms (log)")
    axes[0].legend(fontsize=8)
    _title(fig, "End-to-end latency, hub vs raw loop", latency.get("machine", {}))
    fig.tight_layout(rect=(0, 0.03, 1, 0.93))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def resource_cost(resources: dict[str, Any], out: Path) -> Path | None:
    per_million = resources.get("cpu_s_per_million", {})
    if not per_million:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.6))
    names = list(per_million)
    own = [per_million[n].get("process", 0) for n in names]
    broker = [per_million[n].get("broker", 0) for n in names]
    left.bar(names, own, label="process", color="#4c72b0")
    left.bar(names, broker, bottom=own, label="broker", color="#dd8452")
    left.set_ylabel("CPU seconds per million deliveries")
    plt.setp(left.get_xticklabels(), rotation=30, ha="right", fontsize=7)
    left.legend(fontsize=8)
    rss = resources.get("rss_mb", {})
    right.bar(list(rss), list(rss.values()), color="#55a868")
    right.set_ylabel("peak RSS, MB")
    plt.setp(right.get_xticklabels(), rotation=30, ha="right", fontsize=7)
    _title(fig, "Resource cost", resources.get("machine", {}))
    fig.tight_layout(rect=(0, 0.03, 1, 0.93))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def render_all(results: dict[str, dict[str, Any]], folder: Path) -> list[str]:
    """Every plot the results allow, written into ``folder``; their file names."""
    made: list[Path | None] = []
    if "peers" in results:
        made.append(throughput_ratios(results["peers"], folder / "throughput_ratios.png"))
    scaling = results.get("scaling", {})
    for name, curve in scaling.get("curves", {}).items():
        made.append(
            scaling_curve(name, curve, scaling.get("machine", {}), folder / f"scaling_{name}.png")
        )
    if "latency" in results:
        made.append(latency_percentiles(results["latency"], folder / "latency.png"))
    if "resources" in results:
        made.append(resource_cost(results["resources"], folder / "resource_cost.png"))
    return [p.name for p in made if p is not None]
