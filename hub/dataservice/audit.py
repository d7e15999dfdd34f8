"""Audit of data-service calls, written to the hub's audit topic (``_govhub.audit``).

Each call becomes one event of kind ``data-service-call``, beside the router's
``delivery`` events: who called (party and subscription), which resource, what kind of
call, the keys asked for as a SHA-256 digest (never in clear: the audit trail must not
become a copy of the personal data it protects), how many rows answered, the outcome and
the policy version that decided. :func:`call_event` builds the event; :class:`AuditWriter`
produces events in chunks. Anything else that keeps the audit trail (a hash chain, another
sink) can take the same event through a function of the :data:`AuditSink` shape.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import KafkaError

from hub import kafka, metrics

log = logging.getLogger(__name__)

EVENT_KIND = "data-service-call"
CHUNK_KIND = "data-service-calls"
AuditSink = Callable[[dict[str, Any]], None]


def keys_digest(keys: Iterable[str]) -> str:
    """SHA-256 (hex) over the sorted keys, newline-separated: equal sets, equal digests."""
    # One update over the joined text: the same bytes as key by key (UTF-8 concatenates).
    return hashlib.sha256("".join([key + "\n" for key in sorted(keys)]).encode()).hexdigest()


def call_event(
    *,
    node: str,
    caller: str,
    subscription: str | None,
    resource: str,
    call: str,
    keys: Iterable[str] = (),
    results: int,
    outcome: str,
    policy_version: str | None,
    purpose: str | None = None,
    detail: str | None = None,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """One call's audit event (JSON-ready)."""
    key_list = list(keys)
    return {
        "v": 1,
        "kind": EVENT_KIND,
        "node": node,
        "at_ms": int(time.time() * 1000) if at_ms is None else at_ms,
        "caller": caller,
        "subscription": subscription,
        "resource": resource,
        "call": call,
        "key_count": len(key_list),
        "keys_sha256": keys_digest(key_list) if key_list else None,
        "results": results,
        "outcome": outcome,
        "policy_version": policy_version,
        "purpose": purpose,
        "detail": detail,
    }


class AuditWriter:
    """Produces call events to the audit topic in chunks (one Kafka record per up to
    ``chunk`` events or per ``interval_s``, like the router's delivery audit), keyed by the
    node. A chunk is ``{"v": 1, "kind": "data-service-calls", "node", "events": [...]}``.

    One produce per call would cost more than the rest of a key lookup; a chunk costs one
    append per call to a deque (atomic, so the calling thread takes no lock), and the
    chunk is serialised and produced on the writer's own thread, never the caller's: a
    full chunk only wakes it. Events wait at most ``interval_s`` in memory, and
    :meth:`close` writes what is left. A failed write is counted and logged (events carry
    no personal values, so the log may hold them)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        extra: dict[str, str] | None = None,
        *,
        node: str = "",
        chunk: int = 500,
        interval_s: float = 0.05,
    ) -> None:
        self.topic = topic
        self.node = node
        self._chunk = chunk
        self._interval = interval_s
        self._pending: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._producer = kafka.producer(
            bootstrap,
            f"govhub-dataservice-audit-{uuid.uuid4().hex[:8]}",
            extra,
            linger_ms=5,
        )
        self._thread = threading.Thread(
            target=self._run, name="govhub-dataservice-audit", daemon=True
        )
        self._thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        self.write(event)

    def write(self, event: dict[str, Any]) -> None:
        pending = self._pending
        pending.append(event)
        if len(pending) == self._chunk:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self._produce_pending()
            self._producer.poll(0)

    def _produce_pending(self) -> None:
        # The lock keeps chunks whole and in order between this thread and close();
        # writers never take it (deque appends and pops are atomic).
        with self._lock:
            while self._pending:
                self._produce_chunk()

    def _produce_chunk(self) -> None:
        pending = self._pending
        events: list[dict[str, Any]] = []
        try:
            while len(events) < self._chunk:
                events.append(pending.popleft())
        except IndexError:
            pass
        if not events:
            return
        value = orjson.dumps({"v": 1, "kind": CHUNK_KIND, "node": self.node, "events": events})
        while True:
            try:
                self._producer.produce(
                    self.topic, value, self.node.encode(), on_delivery=self._delivered
                )
                break
            except BufferError:
                self._producer.poll(0.01)
        metrics.DATASERVICE_AUDIT_EVENTS.labels("produced").inc(len(events))

    @staticmethod
    def _delivered(err: KafkaError | None, msg: Any) -> None:
        if err is None:
            return
        count = len(orjson.loads(msg.value()).get("events", ()))
        metrics.DATASERVICE_AUDIT_EVENTS.labels("failed").inc(count)
        log.error("data service audit chunk not written: %s", err, extra={"chunk": msg.value()})

    def close(self, timeout: float = 10.0) -> int:
        """Write what is pending and wait for it; returns how many chunks are still
        unacknowledged."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._produce_pending()
        return int(self._producer.flush(timeout))
