"""Two real ``govhub serve --roles api`` processes registering into one subject at once.

Every thread registers every schema, in its own order, against one of the two processes:
each schema must end with exactly one version, the versions must be 1..N, and both
processes — and a third one started afterwards from the log — must report the same
subject, versions and ids.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.config import isolated_config
from hub.registry.identity import identify
from tests.integration.test_registry_support import call, provision_admin, record

SUBJECT = "shared-value"
OPTIONAL = {"type": "string", "default": ""}
# Each schema adds a different optional field: all of them are BACKWARD compatible with each
# other, so the default level checks every claim without refusing any.
SCHEMAS = [record(**{f"field{n}": OPTIONAL}) for n in range(20)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiProcesses:
    def __init__(self, bootstrap: str, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
        prefix = f"race{uuid.uuid4().hex[:8]}."
        self.env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, GOVHUB_TOPIC_PREFIX=prefix)
        self.running: list[subprocess.Popen[bytes]] = []
        provision_admin(isolated_config(bootstrap, prefix, tmp / "admin"))

    def start(self, name: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = dict(self.env, GOVHUB_API_PORT=str(port), GOVHUB_STATE_DIR=str(self.tmp / name))
        with open(self.tmp / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--roles", "api"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.running.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if call(base, "GET", "/readyz")[0] == 200:
                    return proc, base + "/registry"
            except OSError:
                pass
            time.sleep(0.2)
        log = (self.tmp / f"{name}.log").read_text(errors="replace")
        raise AssertionError(f"api {name} did not become ready:\n{log[-3000:]}")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.running:
            self.stop(proc)


@pytest.fixture
def apis(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ApiProcesses]:
    processes = ApiProcesses(kafka_bootstrap, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


def view(base: str) -> list[tuple[int, int]]:
    """(version, id) of every version of the subject, as this process reports them."""
    status, versions, _ = call(base, "GET", f"/subjects/{SUBJECT}/versions")
    assert status == 200, versions
    return [(v, call(base, "GET", f"/subjects/{SUBJECT}/versions/{v}")[1]["id"]) for v in versions]


def test_two_api_processes_agree_on_versions_and_ids(apis: ApiProcesses) -> None:
    first, a = apis.start("a")
    _, b = apis.start("b")
    for n, base in enumerate((a, b)):  # a process's first write pays for its Kafka producer
        call(base, "POST", f"/subjects/warm-up-{n}/versions", {"schema": SCHEMAS[0]})
    start = threading.Barrier(8)
    answers: list[tuple[int, int]] = []  # (schema index, id returned)
    failures: list[Any] = []

    def hammer(base: str, seed: int) -> None:
        order = random.Random(seed).sample(range(len(SCHEMAS)), len(SCHEMAS))
        start.wait()
        for n in order:
            status, body, _ = call(
                base, "POST", f"/subjects/{SUBJECT}/versions", {"schema": SCHEMAS[n]}
            )
            if status == 200:
                answers.append((n, body["id"]))
            else:
                failures.append((n, status, body))

    threads = [threading.Thread(target=hammer, args=((a, b)[t % 2], t)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures
    expected_ids = [identify(s).schema_id for s in SCHEMAS]
    assert all(schema_id == expected_ids[n] for n, schema_id in answers)
    assert len(answers) == 8 * len(SCHEMAS)

    seen_by_a, seen_by_b = view(a), view(b)
    assert seen_by_a == seen_by_b
    assert [v for v, _ in seen_by_a] == list(range(1, len(SCHEMAS) + 1))
    assert sorted(schema_id for _, schema_id in seen_by_a) == sorted(expected_ids)

    apis.stop(first)  # a process that starts later reads the same history from the log
    _, c = apis.start("c")
    assert view(c) == seen_by_a
    assert SUBJECT in call(c, "GET", "/subjects")[1]
