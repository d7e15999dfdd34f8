"""Send counts reach Prometheus once a second, latencies straight into histogram buckets."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from hub.gateway.service import SendTally

BOUNDS = (0.005, 0.05, 1.0, float("inf"))


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_flush_matches_observing_each_latency() -> None:
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "", ["tier"], buckets=BOUNDS[:-1], registry=registry)
    tallied = Histogram("tallied_seconds", "", ["tier"], buckets=BOUNDS[:-1], registry=registry)
    frames = Counter("frames", "", ["tier", "protocol"], registry=registry)
    latencies = [0.0, 0.005, 0.0051, 0.04, 0.05, 0.7, 1.0, 3.0, 40.0]
    for value in latencies:
        direct.labels("community").observe(value)

    tally = SendTally(BOUNDS)
    tally.add("community", "sse", 4, 400, 9, latencies[:4])
    for value in latencies[4:]:
        tally.add_one("community", "ws", 100, 1, value)

    def child(metric: Any, *labels: str) -> Any:
        name = getattr(metric, "_name", "")
        if name == "govhub_gateway_frame_latency_seconds":
            return tallied.labels(*labels)
        if name == "govhub_gateway_frames_sent":
            return frames.labels(*labels)
        return metric.labels(*labels)

    tally.flush(child)
    for le in ("0.005", "0.05", "1.0", "+Inf"):
        assert _sample(registry, "tallied_seconds_bucket", tier="community", le=le) == _sample(
            registry, "direct_seconds_bucket", tier="community", le=le
        )
    assert _sample(registry, "tallied_seconds_count", tier="community") == len(latencies)
    assert abs(_sample(registry, "tallied_seconds_sum", tier="community") - sum(latencies)) < 1e-9
    assert _sample(registry, "frames_total", tier="community", protocol="sse") == 4
    assert _sample(registry, "frames_total", tier="community", protocol="ws") == 5
    assert tally.latencies == {} and tally.frames == {}
