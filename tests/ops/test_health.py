"""Health and readiness of every role, with the reasons when not ready."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hub.config import isolated_config
from hub.ops.health import BrokerProbe, HealthServer
from hub.runtime import HubRuntime
from tests.ops.tools import free_port, http_get


def test_health_server_answers_health_readiness_with_reasons_and_metrics() -> None:
    problems: list[str] = ["control topic _govhub.catalog not loaded"]
    server = HealthServer("127.0.0.1", 0, lambda: list(problems))
    port = server.start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert http_get(base + "/healthz") == (200, b'{"status": "ok"}')
        status, body = http_get(base + "/readyz")
        assert status == 503
        assert json.loads(body) == {"status": "not ready", "reasons": problems}
        problems.clear()
        assert http_get(base + "/readyz") == (200, b'{"status": "ready"}')
        status, body = http_get(base + "/metrics")
        assert status == 200 and b"# TYPE govhub_ready gauge" in body
        assert http_get(base + "/nowhere")[0] == 404
    finally:
        server.stop()


def test_broker_probe_names_an_unreachable_broker() -> None:
    port = free_port()  # nothing listens there
    probe = BrokerProbe(f"127.0.0.1:{port}", timeout=1.0)
    probe.check()
    (reason,) = probe.problems()
    assert reason.startswith(f"broker unreachable at 127.0.0.1:{port}")


@pytest.mark.integration
def test_a_router_alone_reports_readiness_on_its_metrics_port(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    probe = BrokerProbe(kafka_bootstrap)
    probe.check()
    assert probe.problems() == []
    config = isolated_config(kafka_bootstrap, f"hl{time.monotonic_ns()}.", tmp_path)
    runtime = HubRuntime(config, ("router",))
    runtime.start()
    try:
        runtime.wait_ready()
        base = f"http://127.0.0.1:{runtime.metrics_port}"
        status, body = http_get(base + "/readyz")
        assert (status, json.loads(body)) == (200, {"status": "ready"})
        assert http_get(base + "/healthz")[0] == 200
        status, body = http_get(base + "/metrics")
        assert b"govhub_ready 1.0" in body and b"govhub_broker_reachable 1.0" in body
        # A control table that stops being loaded is a reason, named.
        runtime.state.keys._loaded.clear()
        status, body = http_get(base + "/readyz")
        reasons = json.loads(body)["reasons"]
        assert status == 503 and any("_govhub.keys not loaded" in r for r in reasons), reasons
        runtime.state.keys._loaded.set()
    finally:
        runtime.stop()
