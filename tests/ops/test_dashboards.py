"""The Grafana dashboards: generated, complete, wired to the provisioned datasource.

Their metric names are checked against live /metrics and their expressions evaluated by
a real Prometheus in test_monitoring_live.py.
"""

from __future__ import annotations

import json

import yaml

from hub.ops import dashboards
from tests.ops.tools import DEPLOY, ROOT, metric_names

REQUIRED = {
    "govhub-overview",
    "govhub-resource",
    "govhub-tier",
    "govhub-gateway",
    "govhub-connectors",
    "govhub-kafka",
}


def load() -> dict[str, dict[str, object]]:
    folder = ROOT / dashboards.DASHBOARD_DIR
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")}


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    assert dashboards.main(["--check", "--output", str(ROOT / dashboards.DASHBOARD_DIR)]) == 0
    assert set(load()) == REQUIRED


def test_every_panel_has_a_query_through_the_datasource_variable() -> None:
    for uid, board in load().items():
        panels = [p for p in board["panels"] if p["type"] != "row"]  # type: ignore[attr-defined]
        assert len(panels) >= 5, uid
        ids = [p["id"] for p in board["panels"]]  # type: ignore[attr-defined]
        assert len(ids) == len(set(ids)), uid
        for panel in panels:
            assert panel["targets"], (uid, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                assert metric_names(target["expr"]), (uid, target["expr"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (uid, panel["title"])


def test_per_resource_and_per_tier_boards_filter_by_their_variable() -> None:
    boards = load()
    for uid, variable in (("govhub-resource", "$resource"), ("govhub-tier", "$tier")):
        exprs = dashboards.expressions(boards[uid])
        panel_exprs = exprs[:-1]  # the last one is the variable's own query
        assert all(variable in e for e in panel_exprs), uid


def test_no_dashboard_breaks_recipients_out_individually() -> None:
    for uid, board in load().items():
        for expr in dashboards.expressions(board):
            assert "recipient" not in expr and "party" not in expr, (uid, expr)


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus() -> None:
    grafana = DEPLOY / "grafana" / "provisioning"
    source = yaml.safe_load((grafana / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((grafana / "dashboards" / "govhub.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/govhub"


def test_metric_name_extraction_ignores_functions_labels_and_keywords() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, tier) "
        "(rate(govhub_gateway_frame_latency_seconds_bucket"
        '{tier=~"$tier", le!="+Inf"}[$__rate_interval]))) > bool 0 '
        "or on (tier) govhub:ingest_to_frame_slow:ratio_rate5m offset 5m"
    )
    assert metric_names(expr) == {
        "govhub_gateway_frame_latency_seconds_bucket",
        "govhub:ingest_to_frame_slow:ratio_rate5m",
    }
