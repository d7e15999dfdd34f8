"""The live page's figures from plain inputs: delivery rows per second, offset samples."""

from __future__ import annotations

from hub.console.auditview import DeliveryRow
from hub.console.live import RATE_S, WINDOW_S, FlowWindow, Scope

TIERS = {"rsj": "department", "jianwai": "township", "yonganli": "village", "gaj-x": "department"}
EVERYTHING = Scope(
    {"govhub.src.mzj.dibao": "dibao", "govhub.src.gaj.huji": "huji"},
    {"govhub.dlq.mzj": "mzj", "govhub.dlq.gaj": "gaj"},
    None,
)
MZJ_ONLY = Scope(
    {"govhub.src.mzj.dibao": "dibao"}, {"govhub.dlq.mzj": "mzj"}, frozenset({"dibao"}), False
)


def row(recipient: str, entries: int, resource: str = "dibao") -> DeliveryRow:
    return DeliveryRow(0, "r", recipient, "sub", resource, 0, 0, entries - 1, entries, "", "")


def test_deliveries_per_second_by_resource_and_tier() -> None:
    window = FlowWindow(start_s=1_000)
    for second in range(1_000, 1_000 + RATE_S):
        window.count([row("rsj", 10), row("jianwai", 4), row("yonganli", 1)], TIERS.get, second)
        window.count([row("gaj-x", 5, "huji")], TIERS.get, second)
    figures = window.snapshot(1_000 + RATE_S, EVERYTHING)
    assert figures["deliveries_per_s_by_resource"] == {"dibao": 15.0, "huji": 5.0}
    assert figures["deliveries_per_s_by_tier"] == {
        "department": 15.0,
        "township": 4.0,
        "village": 1.0,
    }
    assert figures["delivered_since_start"] == {"dibao": 75, "huji": 25}
    series = figures["series"]
    assert len(series) == WINDOW_S and series[-1] == [1_000 + RATE_S - 1, 20]
    assert sum(n for _, n in series) == 100


def test_a_department_sees_its_own_resources_and_no_hub_wide_figures() -> None:
    window = FlowWindow(start_s=0)
    window.count([row("rsj", 10), row("gaj-x", 7, "huji")], TIERS.get, 0)
    window.gateways = {"urls": ["http://gw"], "subscribers": {"village": 3}, "lag_s": {}}
    figures = window.snapshot(1, MZJ_ONLY)
    assert figures["delivered_since_start"] == {"dibao": 10}
    assert "subscribers_by_tier" not in figures and "gateways" not in figures
    assert window.snapshot(1, EVERYTHING)["subscribers_by_tier"] == {"village": 3}


def test_the_current_second_is_not_counted_until_it_is_over() -> None:
    window = FlowWindow(start_s=50)
    window.count([row("rsj", 10)], TIERS.get, 50)
    assert window.snapshot(50, EVERYTHING)["deliveries_per_s_by_resource"] == {}
    assert window.snapshot(51, EVERYTHING)["deliveries_per_s_by_resource"] == {"dibao": 2.0}
    # Quiet minutes later the rate is back to nothing, the chart keeps its length.
    later = window.snapshot(51 + 3 * WINDOW_S, EVERYTHING)
    assert later["deliveries_per_s_by_resource"] == {} and len(later["series"]) == WINDOW_S


def test_records_in_and_dead_letters_from_end_offsets() -> None:
    window = FlowWindow(start_s=0)
    assert window.snapshot(0, EVERYTHING)["records_in_per_s"] == {}
    window.sample_offsets(10.0, {"govhub.src.mzj.dibao": 100, "govhub.dlq.mzj": 2})
    window.sample_offsets(12.0, {"govhub.src.mzj.dibao": 160, "govhub.dlq.mzj": 4})
    figures = window.snapshot(0, EVERYTHING)
    # huji's topic does not exist yet: no growth, no error
    assert figures["records_in_per_s"] == {"dibao": 30.0, "huji": 0.0}
    assert figures["dead_letters"] == {
        "mzj": {"total": 4, "per_s": 1.0},
        "gaj": {"total": 0, "per_s": 0.0},
    }
    # Older samples fall out of the rate window.
    window.sample_offsets(30.0, {"govhub.src.mzj.dibao": 160, "govhub.dlq.mzj": 4})
    assert window.snapshot(0, EVERYTHING)["records_in_per_s"]["dibao"] == 0.0
