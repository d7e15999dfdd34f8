"""The Prometheus config and rules, checked and unit-tested by the real promtool."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.ops.tools import PROMETHEUS_DIR, ROOT, require_tool

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rules() -> list[dict[str, object]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_promtool_accepts_the_config_and_every_rule_file() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    result = promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *(str(p) for p in TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_every_alert_has_a_firing_test_and_every_recording_rule_a_value_test() -> None:
    fired: set[str] = set()
    valued: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
            for check in case.get("promql_expr_test", []):
                valued.add(str(check["expr"]).strip())
    alerts = {str(r["alert"]) for r in rules() if "alert" in r}
    records = {str(r["record"]) for r in rules() if "record" in r}
    assert alerts - fired == set(), "alerts without a test in which they fire"
    untested = {r for r in records if not any(r in expr for expr in valued)}
    assert untested == set(), "recording rules without a value test"


def test_every_alert_has_severity_summary_and_a_runbook_section() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in operations.splitlines()
        if line.startswith("#")
    }
    for rule in rules():
        if "alert" not in rule:
            continue
        name = str(rule["alert"])
        labels = rule["labels"]
        annotations = rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in {"page", "ticket"}, name
        assert isinstance(annotations, dict) and annotations["summary"], name
        assert annotations["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/operations.md has no section {name}"


def test_scrape_jobs_cover_every_role_and_the_brokers() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"govhub-api", "govhub-router", "govhub-gateway", "kafka"} <= jobs
    alert_jobs = set()
    for rule in rules():
        alert_jobs.update(re.findall(r'job="([a-z-]+)"', str(rule["expr"])))
    assert alert_jobs <= jobs, alert_jobs - jobs
