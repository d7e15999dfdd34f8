"""The notary as its own process (``govhub serve --roles audit``): killed with SIGKILL while
events keep arriving, a new one resumes so that every event is chained exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hub import kafka
from hub.audit.commands import published_key
from hub.audit.events import AuditWriter, control_event
from hub.audit.store import read_log, read_topic
from hub.audit.verify import verify_log
from hub.config import isolated_config, load_config
from hub.runtime import HubRuntime
from hub.topics import Topics, ensure_hub_topics

pytestmark = pytest.mark.integration


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--roles", "audit"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def _links(bootstrap: str, topics: Topics) -> int:
    return sum(1 for _, _, v in read_topic(bootstrap, topics.audit_chain) if v and b'"link"' in v)


def test_notary_resumes_after_kill_9_without_gaps_or_repeats(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"it{uuid.uuid4().hex[:8]}."
    topics = Topics(prefix)
    ensure_hub_topics(kafka.admin_client(kafka_bootstrap), topics, 3)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GOVHUB_TOPIC_PREFIX": prefix,
        "GOVHUB_KEK_FILE": str(tmp_path / "kek"),
        "GOVHUB_STATE_DIR": str(tmp_path / "state"),
        "GOVHUB_METRICS_PORT": "0",
    }
    writer = AuditWriter(kafka_bootstrap, topics)
    stop = threading.Event()
    written = 0

    def keep_writing() -> None:
        nonlocal written
        while not stop.is_set():
            for i in range(50):
                writer.write(control_event(f"actor-{i % 7}", "party.update", target=f"p{written}"))
                written += 1
            writer.flush()
            time.sleep(0.02)

    thread = threading.Thread(target=keep_writing, daemon=True)
    thread.start()
    log = tmp_path / "notary.log"
    first = _serve(env, log)
    try:
        deadline = time.monotonic() + 60
        while _links(kafka_bootstrap, topics) < 300:
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the first notary chained too little"
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(0.5)  # events keep arriving while no notary runs
        second = _serve(env, log)
        try:
            time.sleep(1.5)
            stop.set()
            thread.join(10)
            writer.close()
            deadline = time.monotonic() + 90
            while True:
                audit_log = read_log(kafka_bootstrap, topics.audit, topics.audit_chain)
                events = sum(len(v) for v in audit_log.events.values())
                links = sum(
                    len([r for r in v if hasattr(r, "event_id")]) for v in audit_log.chain.values()
                )
                if events == written and links >= events:
                    break
                assert second.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"{links} links for {events}/{written} events"
                time.sleep(0.3)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        stop.set()
        if first.poll() is None:
            first.kill()
    config = load_config(
        env={},
        overrides={
            "kafka.bootstrap_servers": kafka_bootstrap,
            "kafka.topic_prefix": prefix,
            "crypto.kek_file": str(tmp_path / "kek"),
        },
    )
    public = published_key(config, topics)
    report = verify_log(audit_log, public)
    assert report.ok, [str(f) for f in report.findings]
    assert links == events == written
    assert sum(s.checkpoints for s in report.partitions.values()) >= 1


def _notary_restarts() -> float:
    return REGISTRY.get_sample_value("govhub_role_restarts_total", {"role": "audit notary"}) or 0.0


def test_a_fenced_notary_starts_again_in_its_process(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Another producer takes the notary's transactional id: its producer is fenced (a
    fatal error). The notary starts again in its process and chains every event once."""
    prefix = f"it{uuid.uuid4().hex[:8]}."
    config = isolated_config(kafka_bootstrap, prefix, tmp_path / "state")
    topics = Topics(prefix)
    runtime = HubRuntime(config, ("audit",))
    runtime.start()
    writer = AuditWriter(kafka_bootstrap, topics)
    try:
        runtime.wait_ready()

        def write(count: int, start: int) -> None:
            for i in range(start, start + count):
                writer.write(control_event("actor", "party.update", target=f"p{i}"))
            writer.flush()

        def chained(expected: int) -> None:
            deadline = time.monotonic() + 60
            while _links(kafka_bootstrap, topics) < expected:
                assert runtime.failure is None, runtime.failure
                assert time.monotonic() < deadline, f"fewer than {expected} events chained"
                time.sleep(0.2)

        write(100, 0)
        chained(100)
        restarts = _notary_restarts()
        intruder = kafka.producer(
            kafka_bootstrap, "intruder", transactional_id=f"{prefix}govhub-audit-notary"
        )
        intruder.init_transactions(30)
        write(100, 100)
        deadline = time.monotonic() + 60
        while _notary_restarts() <= restarts:
            assert time.monotonic() < deadline, "the fenced notary did not start again"
            time.sleep(0.2)
        chained(200)
        audit_log = read_log(kafka_bootstrap, topics.audit, topics.audit_chain)
        report = verify_log(audit_log, published_key(config, topics))
        assert report.ok, [str(f) for f in report.findings]
        assert _links(kafka_bootstrap, topics) == 200
        assert runtime.failure is None
    finally:
        writer.close()
        runtime.stop()
