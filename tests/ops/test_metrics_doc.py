"""docs/metrics.md is generated from the registered collectors and cannot go stale; no
metric carries a label whose values grow with the recipients."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from hub.ops import metricsdoc
from tests.ops.tools import ROOT


def test_the_committed_reference_is_what_the_code_generates() -> None:
    metrics = metricsdoc.collect_metrics()
    expected = metricsdoc.render_markdown(metrics)
    committed = (ROOT / metricsdoc.DOC_PATH).read_text(encoding="utf-8")
    assert committed == expected, "docs/metrics.md is stale: run `make metrics-doc`"


def test_every_metric_of_every_module_is_listed_with_type_labels_and_meaning() -> None:
    metrics = {m.name: m for m in metricsdoc.collect_metrics()}
    from prometheus_client import REGISTRY

    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            exposed = f"{family.name}_total" if family.type == "counter" else family.name
            assert exposed in metrics, exposed
    assert metrics["govhub_router_deliveries_total"].labels == ("resource", "tier")
    assert metrics["govhub_router_ingest_to_frame_seconds"].type == "histogram"
    assert metrics["govhub_router_ingest_to_frame_seconds"].buckets[-1] == 30.0
    assert all(m.help for m in metrics.values())
    text = (ROOT / metricsdoc.DOC_PATH).read_text(encoding="utf-8")
    for name in metrics:
        assert f"`{name}`" in text


def test_labels_are_bounded_at_ten_thousand_recipients() -> None:
    assert metricsdoc.label_problems(metricsdoc.collect_metrics()) == []


def test_an_unbounded_or_undocumented_label_is_refused() -> None:
    registry = CollectorRegistry()
    per_recipient = Counter("govhub_x_frames_total", "frames", ["recipient"], registry=registry)
    odd = Counter("govhub_x_other_total", "other", ["colour"], registry=registry)
    infos = [
        metricsdoc.MetricInfo("govhub_x_frames_total", "counter", "frames",
                              tuple(per_recipient._labelnames), "test"),
        metricsdoc.MetricInfo("govhub_x_other_total", "counter", "other",
                              tuple(odd._labelnames), "test"),
    ]  # fmt: skip
    problems = metricsdoc.label_problems(infos)
    assert len(problems) == 2
    assert "grows with the recipients" in problems[0]
    assert "LABEL_BOUNDS" in problems[1]
