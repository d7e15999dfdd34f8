"""``govhub bench soak`` for a quarter of a minute on the test broker: every role as its own
process, the JSON in its documented shape, and every entitled delivery accounted for.

Timing and memory growth are the benchmark's to judge, never the test's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from hub.bench.soak import HUB_PROCESSES

pytestmark = pytest.mark.integration


def test_soak_runs_the_whole_path_and_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "bench",
            "soak",
            "--quick",
            "--minutes",
            "0.25",
            "--interval",
            "1",
            "--bootstrap",
            kafka_bootstrap,
            "--json",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    result = orjson.loads(out.read_bytes())

    config = result["config"]
    assert config["minutes"] == 0.25
    assert config["rate_records_per_s"] > 0
    assert config["subscribers"] > 300
    assert set(HUB_PROCESSES) <= set(result["series"])
    for name in (*HUB_PROCESSES, "simulator"):
        series = result["series"][name]
        assert {"t", "rss", "threads", "fds"} <= set(series)
        assert len(series["t"]) == len(series["rss"]) > 3
        assert name in result["growth_pct"]
    assert result["max_growth_pct"] is not None
    assert isinstance(result["goals_met"], bool)

    accounting = result["accounting"]
    assert accounting["published"] > 0
    assert accounting["rejected"] == 0
    assert accounting["expected"] == accounting["published"] * config["recipients_per_record"]
    assert accounting["delivered"] == accounting["expected"]
    assert accounting["lost"] == accounting["extra"] == accounting["misaddressed"] == 0
    assert result["goals"]["no_loss"] is True
