"""`govhub doctor` against a real broker and a running hub: it reports what is wrong and
what to do about it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from hub.config import isolated_config
from hub.ops.doctor import Doctor, format_findings
from hub.topics import Topics
from tests.integration.hubworld import hub_world
from tests.ops.tools import ROOT, free_port


def doctor_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "doctor", "--timeout", "3", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_unreachable_cluster_fails_with_the_fix(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
           "GOVHUB_STATE_DIR": str(tmp_path)}  # fmt: skip
    result = doctor_cli("--json", env=env)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    (connectivity,) = [f for f in document["findings"] if f["check"] == "connectivity"]
    assert connectivity["status"] == "fail" and "govhub kafka up" in connectivity["fix"]


def test_a_bad_configuration_is_a_finding_not_a_traceback(tmp_path: Path) -> None:
    result = doctor_cli("--json", env={"PATH": "/usr/bin:/bin", "GOVHUB_STATE_DIR": str(tmp_path)})
    assert result.returncode == 1
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["check"] == "config" and "bootstrap_servers" in finding["detail"]


@pytest.mark.integration
def test_a_healthy_hub_passes_every_check(kafka_bootstrap: str, tmp_path: Path) -> None:
    with hub_world(kafka_bootstrap, tmp_path) as world:
        doctor = Doctor(world.config, {"api": world.runtime.api_url}, timeout=5)
        findings = doctor.run()
        failed = [f for f in findings if f.status == "fail"]
        assert failed == [], format_findings(findings)
        by_check = {f.check: f for f in findings}
        assert set(by_check) == {"connectivity", "topics", "acls", "roles", "clocks", "versions"}
        assert by_check["roles"].status == "ok" and "ready" in by_check["roles"].detail
        assert by_check["clocks"].status == "ok"
        assert "the same version" in by_check["versions"].detail


@pytest.mark.integration
def test_uncompacted_control_topics_and_missing_topics_are_named(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"dr{uuid.uuid4().hex[:8]}."
    topics = Topics(prefix)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    # Control topics created by hand, without compaction; no delivery or audit topic.
    futures = admin.create_topics([NewTopic(t, 1) for t in topics.control], operation_timeout=30)
    for future in futures.values():
        future.result(60)
    try:
        config = isolated_config(kafka_bootstrap, prefix, tmp_path)
        findings = Doctor(config, timeout=5).run()
        text = format_findings(findings)
        problems = {f.detail: f.fix for f in findings if f.status == "fail"}
        missing = next(d for d in problems if d.startswith("missing:"))
        assert topics.delivery in missing and topics.audit in missing, text
        assert "govhub serve --roles api" in problems[missing]
        compaction = next(d for d in problems if d.startswith("control topics not compacted"))
        assert topics.keys in compaction, text
        assert "cleanup.policy=compact" in problems[compaction]
    finally:
        admin.delete_topics(list(topics.control), operation_timeout=10)
