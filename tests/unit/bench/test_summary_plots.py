"""The summary and the plots of ``govhub bench all``, rendered from a recorded run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.bench.all import derive_resources
from hub.bench.summary import headlines, load_results, render

MACHINE = {"cpu": "Test CPU @ 2.0GHz", "cores": 2}
PEERS = {
    "benchmark": "peers",
    "machine": MACHINE,
    "at": "2026-11-30T06:00:00Z",
    "runs": {
        "raw": {"records_per_s": 100_000, "cpu_hub": 0.5, "rss_bytes": 60 * 2**20},
        "router_standard": {
            "records_per_s": 80_000,
            "cpu_hub": 0.8,
            "cpu_broker": 0.3,
            "rss_bytes": 120 * 2**20,
        },
        "router_single": {"records_per_s": 90_000, "cpu_hub": 0.7, "cpu_broker": 0.2},
        "router_single_plaintext": {"records_per_s": 95_000},
        "mirrormaker2": {"records_per_s": 30_000, "cpu_peer": 0.9, "rss_bytes": 600 * 2**20},
        "connect_smt_view": {"records_per_s": 20_000, "cpu_peer": 0.8},
    },
    "ratios": {
        "hub_vs_mirrormaker2_like_for_like": 3.0,
        "hub_unencrypted_vs_mirrormaker2_like_for_like": 3.167,
        "hub_vs_raw_standard_mix": 0.8,
        "hub_standard_vs_connect_smt_view": 4.0,
        "mirrormaker2_vs_raw": 0.3,
    },
}
SCALING = {
    "benchmark": "scaling",
    "machine": MACHINE,
    "curves": {
        "recipients": {
            "label": "recipients per record",
            "baseline": "1 recipient",
            "points": [
                {"x": 1, "records_per_s": 90_000, "ratio": 1.0},
                {"x": 8, "records_per_s": 45_000, "ratio": 0.5},
            ],
        }
    },
}
LATENCY = {
    "benchmark": "latency",
    "machine": MACHINE,
    "loads": [
        {
            "share": share,
            "raw": {"p50_ms": 5.0, "p99_ms": 20.0, "p999_ms": 40.0},
            "hub": {"p50_ms": 60.0, "p99_ms": 120.0, "p999_ms": 200.0},
        }
        for share in (0.1, 0.5, 0.9)
    ],
}


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    for name, data in (("peers", PEERS), ("scaling", SCALING), ("latency", LATENCY)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    (tmp_path / "run.json").write_text(
        json.dumps({"machine": MACHINE, "at": "2026-11-30T06:10:00Z", "quick": True})
    )
    return tmp_path


def test_headlines_carry_the_recorded_ratios(recorded: Path) -> None:
    rows = {row.scenario: row for row in headlines(load_results(recorded))}
    like = next(r for s, r in rows.items() if "MirrorMaker 2 (like for like)" in s)
    assert like.ratio == 3.0
    assert "90,000 records/s" in like.measured
    assert next(r for s, r in rows.items() if "vs raw loop" in s and "standard" in s).ratio == 0.8
    assert rows["scaling: recipients per record 1 → 8"].ratio == 0.5
    assert rows["p99 latency at 50% of max rate"].ratio == 6.0


def test_summary_names_machine_and_date(recorded: Path) -> None:
    text = render(load_results(recorded), ["throughput_ratios.png"])
    assert "Test CPU @ 2.0GHz, 2 cores" in text
    assert "2026-11-30T06:10:00Z" in text
    assert "`govhub bench all --quick`" in text
    assert "| scenario | measured | baseline | ratio |" in text
    assert "[throughput_ratios.png](throughput_ratios.png)" in text


def test_resources_give_cpu_per_million_and_the_sizing_figure(recorded: Path) -> None:
    resources = derive_resources(load_results(recorded))
    assert resources is not None
    # 0.8 core at 80,000 records/s × 4 deliveries = 2.5 CPU s per million deliveries.
    assert resources["cpu_s_per_million"]["router_standard"]["process"] == 2.5
    assert resources["sizing"]["hub_cores_per_100k"] == 1.0
    assert resources["sizing"]["raw_cores_per_100k"] == 0.5
    assert resources["rss_mb"]["mirrormaker2"] == 600.0


def test_plots_are_written_one_png_per_figure(recorded: Path) -> None:
    pytest.importorskip("matplotlib")
    from hub.bench.plots import render_all

    results = load_results(recorded)
    resources = derive_resources(results)
    assert resources is not None
    results["resources"] = resources
    names = render_all(results, recorded)
    assert names == [
        "throughput_ratios.png",
        "scaling_recipients.png",
        "latency.png",
        "resource_cost.png",
    ]
    for name in names:
        assert (recorded / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
