"""Auditor queries: events by recipient, resource, record id and time; lineage; CSV.

The api keeps an :class:`AuditIndex`: a background reader tails ``_govhub.audit``
(``read_committed``) and keeps a bounded in-memory table of rows — one per delivery frame
and per control event — plus a record id → rows map. Bounds: ``max_rows`` rows and
``max_record_ids`` (record id, frame) pairs; past either, the oldest rows are dropped and
answers say from when the index is complete (``index_from_ms``). Older questions are
answered by an export scanned from Kafka (``govhub audit export``), which has no bound.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from hub import kafka

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "at",
    "at_ms",
    "kind",
    "actor",
    "action",
    "recipient",
    "resource",
    "subscription",
    "target",
    "outcome",
    "record_count",
    "ids_alg",
    "ids_digest",
    "source_partition",
    "source_offsets",
    "key_id",
    "tag",
    "event_id",
    "audit_partition",
    "audit_offset",
)


@dataclass(slots=True)
class Row:
    """One delivery frame or one control event, as auditors see it."""

    kind: str
    at_ms: int
    event_id: str
    audit_partition: int
    audit_offset: int
    actor: str
    action: str
    recipient: str | None = None
    resource: str | None = None
    subscription: str | None = None
    target: str | None = None
    outcome: str | None = None
    record_count: int = 0
    ids_alg: str | None = None
    ids_digest: str | None = None
    source_partition: int | None = None
    source_offsets: list[list[int]] = field(default_factory=list)
    key_id: str | None = None
    tag: str | None = None
    view_schemas: list[int] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self, with_ids: bool = False) -> dict[str, Any]:
        doc = {
            "kind": self.kind,
            "at_ms": self.at_ms,
            "at": iso(self.at_ms),
            "event_id": self.event_id,
            "audit_partition": self.audit_partition,
            "audit_offset": self.audit_offset,
            "actor": self.actor,
            "action": self.action,
            "recipient": self.recipient,
            "resource": self.resource,
            "subscription": self.subscription,
            "target": self.target,
            "outcome": self.outcome,
            "record_count": self.record_count,
            "ids_alg": self.ids_alg,
            "ids_digest": self.ids_digest,
            "source_partition": self.source_partition,
            "source_offsets": self.source_offsets,
            "key_id": self.key_id,
            "tag": self.tag,
            "view_schemas": self.view_schemas,
            "detail": self.detail,
        }
        if with_ids:
            doc["record_ids"] = self.record_ids
        return doc

    def offset_of(self, record_id: str) -> int | None:
        """The source offset of ``record_id`` in this frame (entries are in offset order)."""
        try:
            index = self.record_ids.index(record_id)
        except ValueError:
            return None
        for first, last in self.source_offsets:
            span = last - first + 1
            if index < span:
                return first + index
            index -= span
        return None


def iso(at_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}Z"


def rows_of(partition: int, offset: int, value: bytes | None) -> list[Row]:
    """The rows of one audit record; an unreadable record gives one ``unreadable`` row (so
    it is seen, never silently skipped)."""
    try:
        doc = orjson.loads(value or b"")
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        kind = doc.get("kind")
        at_ms = int(doc.get("at_ms") or 0)
        event_id = str(doc.get("id") or f"@{partition}:{offset}")
        if kind == "delivery":
            return _delivery_rows(doc, partition, offset, at_ms, event_id)
        if kind == "control":
            return [
                Row(
                    "control",
                    at_ms,
                    event_id,
                    partition,
                    offset,
                    str(doc.get("actor") or ""),
                    str(doc.get("action") or ""),
                    recipient=_opt(doc.get("recipient")),
                    resource=_opt(doc.get("resource")),
                    subscription=_opt(doc.get("subscription")),
                    target=_opt(doc.get("target")),
                    outcome=_opt(doc.get("outcome")),
                    detail=_detail(doc.get("detail")),
                )
            ]
        if kind in ("data-service-calls", "data-service-call"):
            calls = doc["events"] if kind == "data-service-calls" else [doc]
            return [_call_row(c, partition, offset, event_id) for c in calls]
        # A kind this version does not know: listed, not dropped.
        return [Row(str(kind), at_ms, event_id, partition, offset, "", str(kind), detail=doc)]
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, IndexError) as exc:
        return [
            Row(
                "unreadable",
                0,
                f"@{partition}:{offset}",
                partition,
                offset,
                "",
                "unreadable",
                detail={"error": str(exc)[:200]},
            )
        ]


def _call_row(call: Any, partition: int, offset: int, event_id: str) -> Row:
    """A data-service call (``hub/dataservice/audit.py``): who asked which resource, how many
    rows answered; the keys asked for only as their digest."""
    if not isinstance(call, dict):
        raise ValueError("data-service call event is not an object")
    caller = str(call.get("caller") or "")
    return Row(
        "call",
        int(call.get("at_ms") or 0),
        event_id,
        partition,
        offset,
        caller,
        f"dataservice.{call.get('call') or 'call'}",
        recipient=caller or None,
        resource=_opt(call.get("resource")),
        subscription=_opt(call.get("subscription")),
        outcome=_opt(call.get("outcome")),
        record_count=int(call.get("results") or 0),
        ids_alg="sha256" if call.get("keys_sha256") else None,
        ids_digest=_opt(call.get("keys_sha256")),
        detail={
            k: call.get(k) for k in ("node", "key_count", "policy_version", "purpose", "detail")
        },
    )


def _detail(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_or_none(value: Any) -> int | None:
    return value if _is_int(value) else None


def _spans(frame: dict[str, Any]) -> list[list[int]]:
    """The frame's source offsets as ``[first, last]`` runs (v1 rows: one run), dropping
    anything that is not a pair of integers."""
    spans = frame.get("offsets")
    if spans is None:
        spans = [[frame.get("first_offset"), frame.get("last_offset")]]
    if not isinstance(spans, list):
        return []
    return [
        [span[0], span[1]]
        for span in spans
        if isinstance(span, list) and len(span) == 2 and all(_is_int(v) for v in span)
    ]


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _delivery_rows(
    doc: dict[str, Any], partition: int, offset: int, at_ms: int, event_id: str
) -> list[Row]:
    fields = list(doc["fields"])
    router = str(doc.get("router") or "")
    action = str(doc.get("action") or "deliver")  # data-service answers name theirs
    out = []
    for values in doc["frames"]:
        frame = dict(zip(fields, values, strict=False))
        out.append(
            Row(
                "delivery",
                at_ms,
                event_id,
                partition,
                offset,
                router,
                action,
                recipient=_opt(frame.get("recipient")),
                resource=_opt(frame.get("resource")),
                subscription=_opt(frame.get("subscription")),
                record_count=int(frame.get("entries") or 0),
                ids_alg=_opt(frame.get("ids_alg")),
                ids_digest=_opt(frame.get("ids_digest")),
                source_partition=_int_or_none(frame.get("source_partition")),
                source_offsets=_spans(frame),
                key_id=_opt(frame.get("key_id")),
                tag=_opt(frame.get("tag")),
                view_schemas=[v for v in frame.get("view_schemas") or () if _is_int(v)],
                record_ids=[str(r) for r in frame.get("record_ids") or ()],
                detail=_detail(doc.get("detail")),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Query:
    recipient: str | None = None
    resource: str | None = None
    record_id: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    kind: str | None = None

    def matches(self, row: Row) -> bool:
        return (
            (self.recipient is None or row.recipient == self.recipient)
            and (self.resource is None or row.resource == self.resource)
            and (self.kind is None or row.kind == self.kind)
            and (self.from_ms is None or row.at_ms >= self.from_ms)
            and (self.to_ms is None or row.at_ms < self.to_ms)
            and (self.record_id is None or self.record_id in row.record_ids)
        )


class AuditIndex:
    """A bounded in-memory index of the audit topic, kept current by a reader thread."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        client_config: Mapping[str, str] | None = None,
        max_rows: int = 500_000,
        max_record_ids: int = 5_000_000,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._client_config = dict(client_config or {})
        self.max_rows = max_rows
        self.max_record_ids = max_record_ids
        self._rows: deque[Row] = deque()
        self._by_record: dict[str, list[Row]] = {}
        self._postings = 0
        self.evicted_until_ms: int | None = None
        self._positions: dict[int, int] = {}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._watermarks: Any = None
        self._watermark_lock = threading.Lock()
        self.error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-index", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._watermark_lock:
            if self._watermarks is not None:
                self._watermarks.close()
                self._watermarks = None

    def _run(self) -> None:
        consumer = kafka.consumer(
            self._bootstrap,
            f"govhub-audit-index-{time.monotonic_ns()}",
            "govhub-audit-index",
            self._client_config,
        )
        self._consumer = consumer
        try:
            while not self._stop.is_set():
                try:
                    meta = consumer.list_topics(self._topic, timeout=5).topics.get(self._topic)
                except KafkaException as exc:
                    self.error = str(exc)
                    continue
                if meta is not None and meta.error is None and meta.partitions:
                    consumer.assign(
                        [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in meta.partitions]
                    )
                    break
                self._stop.wait(1.0)
            while not self._stop.is_set():
                for msg in consumer.consume(1000, 0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.error = str(err)
                        continue
                    partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                    self.add(rows_of(partition, offset, msg.value()))
                self._note_positions(consumer)
        finally:
            self._consumer = None
            consumer.close()

    def catch_up(self, timeout: float = 5.0) -> bool:
        """Wait until every event committed before this call is indexed (end offsets from
        a client of its own; the index thread alone uses its consumer)."""
        if self._consumer is None:
            return False
        with self._watermark_lock:
            if self._watermarks is None:
                self._watermarks = kafka.consumer(
                    self._bootstrap,
                    f"govhub-audit-watermarks-{time.monotonic_ns()}",
                    "govhub-audit-watermarks",
                    self._client_config,
                )
            try:
                meta = self._watermarks.list_topics(self._topic, timeout=timeout)
                partitions = meta.topics[self._topic].partitions
                wanted = {
                    p: self._watermarks.get_watermark_offsets(
                        TopicPartition(self._topic, p), timeout=timeout, cached=False
                    )[1]
                    for p in partitions
                }
            except (KafkaException, KeyError):
                return False
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(self._positions.get(p, 0) < high for p, high in wanted.items()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))
        return True

    def _note_positions(self, consumer: Any) -> None:
        # The consumer's position passes transaction markers, which no message reaches.
        try:
            positions = consumer.position(consumer.assignment())
        except KafkaException:
            return
        with self._lock:
            for tp in positions:
                if tp.offset >= 0:
                    self._positions[tp.partition] = tp.offset
            self._lock.notify_all()

    # -- contents ------------------------------------------------------------------------------
    def add(self, rows: Iterable[Row]) -> None:
        with self._lock:
            for row in rows:
                self._rows.append(row)
                for record_id in row.record_ids:
                    self._by_record.setdefault(record_id, []).append(row)
                self._postings += len(row.record_ids)
            while self._rows and (
                len(self._rows) > self.max_rows or self._postings > self.max_record_ids
            ):
                self._evict(self._rows.popleft())

    def _evict(self, row: Row) -> None:
        for record_id in row.record_ids:
            rows = self._by_record.get(record_id)
            if rows:
                with contextlib.suppress(ValueError):
                    rows.remove(row)
                if not rows:
                    del self._by_record[record_id]
        self._postings -= len(row.record_ids)
        self.evicted_until_ms = max(self.evicted_until_ms or 0, row.at_ms)

    def __len__(self) -> int:
        return len(self._rows)

    def search(self, query: Query, offset: int = 0, limit: int = 100) -> tuple[list[Row], int]:
        """Matching rows in time order, a page of them, and how many matched in all."""
        with self._lock:
            if query.record_id is not None:
                candidates: Iterable[Row] = list(self._by_record.get(query.record_id, ()))
            else:
                candidates = list(self._rows)
        found = sorted(
            (r for r in candidates if query.matches(r)),
            key=lambda r: (r.at_ms, r.audit_partition, r.audit_offset),
        )
        return found[offset : offset + limit], len(found)

    def lineage(self, record_id: str) -> list[dict[str, Any]]:
        """Every delivery of ``record_id``: recipient, subscription, time, view, frame."""
        rows, _ = self.search(Query(record_id=record_id, kind="delivery"), 0, 1_000_000)
        return [
            {
                "recipient": row.recipient,
                "subscription": row.subscription,
                "resource": row.resource,
                "at_ms": row.at_ms,
                "at": iso(row.at_ms),
                "view_schemas": row.view_schemas,
                "source_partition": row.source_partition,
                "source_offset": row.offset_of(record_id),
                "frame": {"key_id": row.key_id, "tag": row.tag, "entries": row.record_count},
                "event_id": row.event_id,
                "router": row.actor,
            }
            for row in rows
        ]


def write_csv(rows: Iterable[Row], out: io.TextIOBase | Any) -> int:
    """Rows as CSV with :data:`CSV_COLUMNS` (UTF-8, a header line); returns the row count."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        doc = row.to_json()
        doc["source_offsets"] = " ".join(
            f"{a}-{b}" if a != b else str(a) for a, b in row.source_offsets
        )
        writer.writerow(["" if doc[c] is None else doc[c] for c in CSV_COLUMNS])
        count += 1
    return count


def csv_text(rows: Iterable[Row]) -> str:
    buffer = io.StringIO()
    write_csv(rows, buffer)
    return buffer.getvalue()


def all_rows(events: Iterator[tuple[int, int, bytes | None]]) -> Iterator[Row]:
    for partition, offset, value in events:
        yield from rows_of(partition, offset, value)
