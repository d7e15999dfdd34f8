"""Delivery audit queries for the console's audit page (审计).

The routers write one delivery row per frame into ``<prefix>_govhub.audit``, in the same
transaction as the frame (``hub/router/service.py``, columns
:data:`hub.router.engine.AUDIT_FIELDS`: recipient, subscription, resource, source
partition, first and last source offset, entries, key id, the frame's authentication tag).
This module answers the auditor's questions from those rows:

- deliveries by subscriber, resource and time;
- the lineage of one record: rows that list the record id (routers write the frame's
  record ids and offset runs) name the recipients it reached; the record is also found in
  its source topic by its ``govhub-record-id`` header, to show where it came from and to
  match rows written without record ids by their offset range.

Each query reads the topics directly (committed data only), bounded by a time window and a
scan budget; it keeps nothing in memory between queries. :class:`AuditView` is the one
entry point the console uses, so the page can move to the hub's audit API unchanged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from hub import kafka
from hub.router.engine import AUDIT_FIELDS, H_INGESTED_AT, H_RECORD_ID, H_REGION
from hub.topics import Topics

MAX_ROWS = 2000
SCAN_BUDGET = 500_000  # records read per query at most
SCAN_SECONDS = 15.0


class AuditQueryError(Exception):
    """The topics could not be read."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    subscriber: str | None = None
    resource: str | None = None
    record_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    at_ms: int
    router: str
    recipient: str
    subscription: str
    resource: str
    source_partition: int
    first_offset: int
    last_offset: int
    entries: int
    key_id: str
    tag: str
    offsets: tuple[tuple[int, int], ...] = ()
    """The source offsets of the frame's entries as [first, last] runs (newer routers)."""
    record_ids: tuple[str, ...] = ()
    """The record ids of the frame's entries (newer routers)."""

    def covers(self, partition: int, offset: int) -> bool:
        """Whether the frame carried the record at ``offset`` of ``partition``: exactly by
        the offset runs when the row has them, else by the frame's offset range (which a
        row filter may have thinned out)."""
        if self.source_partition != partition:
            return False
        if self.offsets:
            return any(first <= offset <= last for first, last in self.offsets)
        return self.first_offset <= offset <= self.last_offset


@dataclass(frozen=True, slots=True)
class SourcePosition:
    resource: str
    topic: str
    partition: int
    offset: int
    region: str
    ingested_ms: int | None


@dataclass(frozen=True, slots=True)
class Lineage:
    record_id: str
    source: SourcePosition | None
    deliveries: tuple[DeliveryRow, ...]

    @property
    def recipients(self) -> list[str]:
        return sorted({d.recipient for d in self.deliveries})


@dataclass(slots=True)
class AuditResult:
    rows: list[DeliveryRow] = field(default_factory=list)
    lineage: Lineage | None = None
    truncated: bool = False
    scanned: int = 0


def parse_delivery_rows(value: bytes) -> list[DeliveryRow]:
    """The delivery rows of one audit record (other kinds of audit record: none)."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(doc, dict) or doc.get("kind") != "delivery":
        return []
    columns = doc.get("fields") or list(AUDIT_FIELDS)
    at_ms, router = int(doc.get("at_ms", 0)), str(doc.get("router", ""))
    out = []
    for frame in doc.get("frames") or ():
        if not isinstance(frame, list) or len(frame) != len(columns):
            continue
        row: dict[str, Any] = dict(zip(columns, frame, strict=True))
        try:
            out.append(
                DeliveryRow(
                    at_ms,
                    router,
                    str(row["recipient"]),
                    str(row["subscription"]),
                    str(row["resource"]),
                    int(row["source_partition"]),
                    int(row["first_offset"]),
                    int(row["last_offset"]),
                    int(row["entries"]),
                    str(row.get("key_id", "")),
                    str(row.get("tag", "")),
                    tuple((int(a), int(b)) for a, b in row.get("offsets") or ()),
                    tuple(str(i) for i in row.get("record_ids") or ()),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


class AuditView:
    """Reads delivery rows and source records for the audit page."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        client_config: Mapping[str, str] | None = None,
        scan_budget: int = SCAN_BUDGET,
        scan_seconds: float = SCAN_SECONDS,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._client_config = dict(client_config or {})
        self._budget = scan_budget
        self._seconds = scan_seconds

    def search(self, query: AuditQuery, source_topics: Mapping[str, str]) -> AuditResult:
        """Delivery rows matching ``query``; with a record id, that record's lineage.
        ``source_topics`` maps resource codes to their source topics (the catalogue)."""
        result = AuditResult()
        position: SourcePosition | None = None
        if query.record_id:
            wanted = source_topics
            if query.resource:
                wanted = {k: v for k, v in source_topics.items() if k == query.resource}
            # Not found (past retention, or beyond the scan budget): rows that list record
            # ids still answer.
            position = self._find_record(query.record_id, wanted, query.since_ms, result)
        for msg_value in self._read(self._topics.audit, query.since_ms, result):
            for row in parse_delivery_rows(msg_value):
                if not _matches(row, query, position):
                    continue
                if len(result.rows) >= MAX_ROWS:
                    result.truncated = True
                    break
                result.rows.append(row)
        result.rows.sort(key=lambda r: (r.at_ms, r.recipient))
        if query.record_id:
            result.lineage = Lineage(query.record_id, position, tuple(result.rows))
        return result

    def lineage(self, record_id: str, source_topics: Mapping[str, str]) -> Lineage:
        found = self.search(AuditQuery(record_id=record_id), source_topics).lineage
        assert found is not None
        return found

    # -- reading ---------------------------------------------------------------------------
    def _find_record(
        self,
        record_id: str,
        source_topics: Mapping[str, str],
        since_ms: int | None,
        result: AuditResult,
    ) -> SourcePosition | None:
        wanted = record_id.encode()
        by_topic = {topic: code for code, topic in source_topics.items()}
        for topic, code in by_topic.items():
            for msg in self._messages(topic, since_ms, result):
                headers = dict(msg.headers() or ())
                if headers.get(H_RECORD_ID) != wanted:
                    continue
                ingested = headers.get(H_INGESTED_AT)
                return SourcePosition(
                    code,
                    topic,
                    int(msg.partition() or 0),
                    int(msg.offset() or 0),
                    (headers.get(H_REGION) or b"").decode(errors="replace"),
                    int(ingested) if ingested and ingested.isdigit() else None,
                )
        return None

    def _read(self, topic: str, since_ms: int | None, result: AuditResult) -> Iterator[bytes]:
        for msg in self._messages(topic, since_ms, result):
            value = msg.value()
            if value:
                yield value

    def _messages(self, topic: str, since_ms: int | None, result: AuditResult) -> Iterator[Any]:
        """Every committed message of ``topic`` (from ``since_ms``) up to its end now."""
        consumer: Consumer = kafka.consumer(
            self._bootstrap,
            f"govhub-console-audit-{uuid.uuid4().hex}",
            "govhub-console-audit",
            self._client_config,
        )
        try:
            ends = self._assign(consumer, topic, since_ms)
            deadline = time.monotonic() + self._seconds
            while ends:
                if result.scanned >= self._budget or time.monotonic() > deadline:
                    result.truncated = True
                    return
                for msg in consumer.consume(500, 0.5):
                    if msg.error() is not None:
                        continue
                    result.scanned += 1
                    offset, partition = msg.offset(), msg.partition()
                    if (
                        offset is not None
                        and partition is not None
                        and offset < ends.get(partition, -1)
                    ):
                        yield msg
                for tp in consumer.position(
                    [TopicPartition(topic, p) for p in list(ends)]
                ):  # past the end (transaction markers included): that partition is done
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
        except KafkaException as exc:
            raise AuditQueryError(f"cannot read {topic}: {exc}") from None
        finally:
            consumer.close()

    @staticmethod
    def _assign(consumer: Consumer, topic: str, since_ms: int | None) -> dict[int, int]:
        metadata = consumer.list_topics(topic, timeout=10)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            return {}
        ends: dict[int, int] = {}
        starts = []
        for partition in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        if since_ms is not None and starts:
            wanted = [TopicPartition(topic, tp.partition, since_ms) for tp in starts]
            found = consumer.offsets_for_times(wanted, 10)
            starts = []
            for tp in found:
                if tp.offset < 0:  # nothing at or after since_ms
                    ends.pop(tp.partition, None)
                else:
                    starts.append(tp)
        if starts:
            consumer.assign(starts)
        return ends


def _matches(row: DeliveryRow, query: AuditQuery, position: SourcePosition | None) -> bool:
    if query.subscriber and row.recipient != query.subscriber:
        return False
    if query.resource and row.resource != query.resource:
        return False
    if query.since_ms is not None and row.at_ms < query.since_ms:
        return False
    if query.until_ms is not None and row.at_ms > query.until_ms:
        return False
    if query.record_id and row.record_ids:
        return query.record_id in row.record_ids
    if position is not None:
        return row.resource == position.resource and row.covers(position.partition, position.offset)
    return not query.record_id
