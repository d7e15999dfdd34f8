"""deploy/compose: validated by docker-compose itself (no Docker engine needed for
`config`), its Prometheus config by promtool, and wired as the issue asks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from hub.ops import deployfiles
from tests.ops.tools import DEPLOY, PROMETHEUS_DIR, ROOT, require_tool

COMPOSE = DEPLOY / "compose" / "docker-compose.yml"


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("docker-compose"), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_accepts_the_file() -> None:
    result = compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    services = resolved["services"]
    brokers = [s for s in services.values() if str(s.get("image", "")).startswith("apache/kafka:")]
    assert len(brokers) == 3
    voters = {b["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert {b["environment"]["KAFKA_NODE_ID"] for b in brokers} == {"1", "2", "3"}
    assert all("javaagent:" in b["environment"]["KAFKA_OPTS"] for b in brokers)
    roles = {name: s["command"][2] for name, s in services.items() if name.startswith("govhub-")}
    assert roles == {"govhub-api": "api", "govhub-router": "router", "govhub-gateway": "gateway"}
    assert {"prometheus", "grafana"} <= set(services)


def test_docker_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    document = yaml.safe_load(COMPOSE.read_text())
    document["services"]["govhub-api"]["restart_policy_typo"] = "always"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(document))
    result = compose_config(broken)
    assert result.returncode != 0 and "restart_policy_typo" in result.stderr


def test_compose_prometheus_has_the_same_jobs_and_promtool_accepts_it(tmp_path: Path) -> None:
    base = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    assert [j["job_name"] for j in compose["scrape_configs"]] == [
        j["job_name"] for j in base["scrape_configs"]
    ]
    # Laid out as the container sees it: the rules next to the config.
    (tmp_path / "prometheus.yml").write_text((DEPLOY / "compose" / "prometheus.yml").read_text())
    (tmp_path / "rules").symlink_to(PROMETHEUS_DIR / "rules")
    result = subprocess.run(
        [require_tool("promtool"), "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 rule files found" in result.stdout


def test_brokers_use_the_generated_exporter_rules_and_grafana_the_dashboards() -> None:
    assert deployfiles.main(["--check", "--root", str(ROOT)]) == 0
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    mounts = services["grafana"]["volumes"]
    assert "../grafana/dashboards:/var/lib/grafana/dashboards/govhub:ro" in mounts
    assert services["grafana"]["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
