"""The JMX exporter option of the local Kafka: its rules, its CLI flags, and the clear
message when the agent cannot be fetched. The agent itself runs in the broker of
test_monitoring_live.py, scraped by a real Prometheus."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from hub.localkafka.commands import _cluster
from hub.localkafka.jmx import (
    DEFAULT_METRICS_PORT,
    agent_option,
    render_exporter_config,
    try_agent_jar,
)
from hub.localkafka.state import ClusterRecord, load_record, save_record


def test_exporter_rules_cover_what_the_alerts_and_dashboards_use() -> None:
    config = yaml.safe_load(render_exporter_config())
    assert config["lowercaseOutputName"] is True
    names = " ".join(rule["name"] for rule in config["rules"])
    for wanted in (
        "kafka_server_brokertopicmetrics_$1_total",  # request and byte rates
        "kafka_server_replicamanager_$1",  # under-replicated, under-min-ISR partitions
        "kafka_server_replicamanager_$1_total",  # ISR shrinks and expands
        "kafka_log_logflushstats_flush_time_ms",  # log flush
        "kafka_network_requestmetrics_$1",  # request latency
        "kafka_controller_kafkacontroller_$1",
    ):
        assert wanted in names
    assert all(rule["pattern"] and rule["type"] in {"GAUGE", "COUNTER"} for rule in config["rules"])
    assert agent_option(Path("/a.jar"), 9404, Path("/c.yaml")) == (
        "-javaagent:/a.jar=127.0.0.1:9404:/c.yaml"
    )


def test_a_failed_download_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn to be found
    jar, why = try_agent_jar(cache_dir=tmp_path / "cache")
    assert jar is None
    assert why.startswith("broker metrics disabled: mvn not found")
    assert "without the JMX exporter" in why


def args(state_dir: Path, **kw: object) -> argparse.Namespace:
    return argparse.Namespace(state_dir=state_dir, **kw)


def test_metrics_port_defaults_repeats_and_can_be_turned_off(tmp_path: Path) -> None:
    assert _cluster(args(tmp_path)).metrics_port == DEFAULT_METRICS_PORT
    assert _cluster(args(tmp_path, metrics_port=19404)).metrics_port == 19404
    assert _cluster(args(tmp_path, no_metrics=True)).metrics_port is None
    # Options left out of `up` repeat those of the last `up`: metrics off stays off.
    kafka_dir = tmp_path / "kafka"
    kafka_dir.mkdir()
    save_record(kafka_dir, ClusterRecord("id", 1, 9092, "4.3.1", None))
    assert _cluster(args(tmp_path)).metrics_port is None
    save_record(kafka_dir, ClusterRecord("id", 1, 9092, "4.3.1", 29404))
    assert load_record(kafka_dir) == ClusterRecord("id", 1, 9092, "4.3.1", 29404)
    assert _cluster(args(tmp_path)).metrics_port == 29404
