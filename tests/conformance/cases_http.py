"""Conformance case of the HTTP push source: a department system posting NDJSON batches."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import orjson

from tests.conformance.harness import CaseEnv, ConnectorCase, Row

CHUNK = 50


class HttpFeeder:
    """Posts the rows in chunks, each with its own Idempotency-Key, and retries a chunk
    (connection refused, 429, 503) until the source answers 200 — an at-least-once client."""

    def __init__(self, env: CaseEnv, rows: Sequence[Row]) -> None:
        self.url = f"http://127.0.0.1:{env.port}/v1/records"
        self.token = env.token
        self.chunks = [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]
        self.accepted = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        for n, chunk in enumerate(self.chunks):
            body = b"\n".join(orjson.dumps(r) for r in chunk)
            while not self._stop.is_set():
                answer = self._post(body, f"feed-{n}")
                if answer is not None:
                    if answer["accepted"] != len(chunk):
                        self.error = f"chunk {n}: {answer['rejected']} rejected: {answer}"
                        return
                    self.accepted += len(chunk)
                    break
                self._stop.wait(0.2)

    def _post(self, body: bytes, key: str) -> dict[str, Any] | None:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/x-ndjson",
                "Idempotency-Key": key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer: dict[str, Any] = orjson.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 503):
                self.error = f"HTTP {exc.code}: {exc.read()[:300]!r}"
                self._stop.set()
            return None
        except OSError:  # refused or reset: the connector is down or restarting
            return None

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self.error:
            raise AssertionError(f"the HTTP source refused the feed: {self.error}")
        if self._thread.is_alive():
            raise AssertionError(f"only {self.accepted} records accepted in {timeout:.0f}s")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(35)


def http_settings(env: CaseEnv) -> dict[str, Any]:
    return {
        "port": env.port,
        "hub": {
            "resource": env.resource.code,
            "bootstrap_servers": env.bootstrap,
            "topic_prefix": env.topic_prefix,
        },
    }


CASES = [
    ConnectorCase(
        name="http",
        type="http",
        settings=http_settings,
        feed=HttpFeeder,
        idle_read_s=1.0,
        in_flight=CHUNK,
    )
]
