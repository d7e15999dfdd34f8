"""Audit events in ``_govhub.audit`` and the writer other roles use.

Two kinds share the topic (UTF-8 JSON values, ``docs/audit.md``):

- ``delivery``: written by the router inside the transaction of its frames, one record per
  transaction chunk with one row per frame (``hub/router/engine.py::AUDIT_FIELDS``);
- ``control``: one record per control change (party, key, catalogue, subscription,
  approval, revocation, role change) or failed sign-in, written by the role that made it.

Every event carries a stable ``id``; its content digest is the hash of its value bytes as
stored, which the notary (:mod:`hub.audit.notary`) chains.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
from confluent_kafka import KafkaError

from hub import kafka, metrics
from hub.audit.digest import record_ids_digest
from hub.parties.model import token_party
from hub.topics import Topics

log = logging.getLogger(__name__)

EVENT_VERSION = 2


def claimed_party(authorization: str | None) -> str | None:
    """The party a presented credential claims to be (never the secret itself)."""
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(credential, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user[:128] or None
    named = token_party(credential[:512])
    return named[:128] if named else None


def new_event_id() -> str:
    """A random 128-bit event id (hex): unique without coordination between writers."""
    return os.urandom(16).hex()


def control_event(
    actor: str,
    action: str,
    *,
    target: str | None = None,
    resource: str | None = None,
    subscription: str | None = None,
    recipient: str | None = None,
    outcome: str = "ok",
    detail: Mapping[str, Any] | None = None,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """One control-change event: who (``actor``, a party id or ``anonymous``) did what
    (``action``, e.g. ``subscription.revoke``) to which ``target``, with the resource,
    subscription and recipient it concerns. ``detail`` holds no secrets (never tokens)."""
    if not actor or not action:
        raise ValueError("an audit event needs an actor and an action")
    return {
        "v": EVENT_VERSION,
        "kind": "control",
        "id": new_event_id(),
        "at_ms": int(time.time() * 1000) if at_ms is None else at_ms,
        "actor": actor,
        "action": action,
        "target": target,
        "resource": resource,
        "subscription": subscription,
        "recipient": recipient,
        "outcome": outcome,
        "detail": dict(detail or {}),
    }


def served_event(
    actor: str,
    action: str,
    *,
    recipient: str,
    resource: str,
    subscription: str | None,
    record_ids: list[str],
    view_schemas: list[int] | None = None,
    alg: str = "sha256",
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Records handed to a recipient outside delivery frames (a data-service answer): a
    ``delivery`` event with one row, so queries and record lineage include it."""
    if not actor or not action or not recipient or not resource:
        raise ValueError("a served event needs an actor, an action, a recipient and a resource")
    row = {
        "recipient": recipient,
        "subscription": subscription,
        "resource": resource,
        "entries": len(record_ids),
        "offsets": [],
        "ids_alg": alg,
        "ids_digest": record_ids_digest(list(record_ids), alg),
        "record_ids": list(record_ids),
        "view_schemas": list(view_schemas or ()),
    }
    fields = list(row)
    return {
        "v": EVENT_VERSION,
        "kind": "delivery",
        "id": new_event_id(),
        "at_ms": int(time.time() * 1000),
        "router": actor,
        "action": action,
        "detail": dict(detail or {}),
        "fields": fields,
        "frames": [[row[f] for f in fields]],
    }


class AuditWriter:
    """Writes control events to ``_govhub.audit`` (idempotent ``acks=all`` producer).

    ``write`` does not block; a write the broker refuses is logged and counted
    (``govhub_audit_write_failures_total``) — the change it records has already happened,
    so it is not undone. ``flush`` waits for the acknowledgements; ``close`` flushes.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        client_config: Mapping[str, str] | None = None,
        role: str = "api",
    ) -> None:
        self._topic = topics.audit
        self._role = role
        self._producer: Any = kafka.producer(
            bootstrap, f"govhub-audit-{role}", client_config, linger_ms=5
        )
        self._lock = threading.Lock()
        self._closed = False

    def write(self, event: Mapping[str, Any]) -> str:
        """Produce one event (from :func:`control_event`); returns its id."""
        value = orjson.dumps(event)
        key = str(event.get("actor") or "").encode() or None
        with self._lock:
            if self._closed:
                raise RuntimeError("audit writer is closed")
            self._producer.produce(self._topic, value, key, on_delivery=self._delivered)
            self._producer.poll(0)
        metrics.AUDIT_EVENTS_WRITTEN.labels(self._role, str(event.get("kind", "control"))).inc()
        return str(event.get("id"))

    def _delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            metrics.AUDIT_WRITE_FAILURES.labels(self._role).inc()
            log.error("audit event not written: %s", err, extra={"topic": self._topic})

    def flush(self, timeout: float = 10.0) -> bool:
        """True when every event written so far is acknowledged."""
        with self._lock:
            return int(self._producer.flush(timeout)) == 0

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._producer.flush(10) != 0:
            log.error("audit events still unacknowledged at close", extra={"topic": self._topic})
