"""Reading the audit trail: the event and chain topics from Kafka, or a JSON-lines export.

An export (``govhub audit export --format jsonl``) holds, after a header line, every event
(``{"type": "event", "partition", "offset", "value"}`` with the value's exact text) and
every chain record (``{"type": "link" | "checkpoint", ...}``) in topic order, so an inspector
can verify it offline (:mod:`hub.audit.verify`) — and a test can tamper with it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from hub import kafka
from hub.audit.chain import ChainFormatError, Checkpoint, Link, parse_chain_record
from hub.audit.digest import hasher


@dataclass(frozen=True, slots=True)
class StoredEvent:
    partition: int
    offset: int
    value: bytes

    @property
    def event_id(self) -> str:
        return event_id_of(self.value)

    def document(self) -> dict[str, Any] | None:
        try:
            doc = orjson.loads(self.value)
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None


def event_id_of(value: bytes) -> str:
    """The event's ``id``; an event without one (older router records, foreign bytes) is
    named by the SHA-256 of its value, which stays the same in any copy."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("id"), str) and doc["id"]:
        return str(doc["id"])
    return "d:" + hasher("sha256")(value)


@dataclass
class AuditLog:
    """Events and chain records by partition, each in stored order."""

    events: dict[int, list[StoredEvent]] = field(default_factory=dict)
    chain: dict[int, list[Link | Checkpoint]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Chain records that could not be parsed (reported as findings by verify)."""
    public_key: str | None = None

    def add_event(self, event: StoredEvent) -> None:
        self.events.setdefault(event.partition, []).append(event)

    def add_chain(self, partition: int, doc: Any, where: str) -> None:
        try:
            record = parse_chain_record(doc)
        except ChainFormatError as exc:
            self.problems.append(f"{where}: {exc}")
            return
        self.chain.setdefault(partition, []).append(record)


# -- Kafka -------------------------------------------------------------------------------------
def read_topic(
    bootstrap: str,
    topic: str,
    client_config: Mapping[str, str] | None = None,
    start_ms: int | None = None,
    timeout: float = 60.0,
) -> Iterator[tuple[int, int, bytes | None]]:
    """Every committed record of ``topic`` as ``(partition, offset, value)``, partition by
    partition in offset order, from ``start_ms`` (or the beginning) to the end now."""
    consumer = kafka.consumer(
        bootstrap,
        f"govhub-audit-reader-{time.monotonic_ns()}",
        "govhub-audit-reader",
        client_config,
        enable_partition_eof=True,
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {topic} does not exist")
        partitions = sorted(meta.partitions)
        if start_ms is None:
            starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        else:
            wanted = [TopicPartition(topic, p, start_ms) for p in partitions]
            starts = [
                TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else -1)
                for tp in consumer.offsets_for_times(wanted, timeout=10)
            ]
        wanted = []
        ends: dict[int, int] = {}
        for start in starts:
            low, high = _watermarks(consumer, TopicPartition(topic, start.partition))
            if high > low and start.offset != -1:  # not empty, something at/after start_ms
                wanted.append(start)
                ends[start.partition] = high
        if not wanted:
            return
        # All partitions at once, each in offset order, up to its end when the read began
        # (a writer that keeps writing must not keep the reader going).
        consumer.assign(wanted)
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over {timeout}s")
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                partition = int(msg.partition() or 0)
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        ends.pop(partition, None)
                        continue
                    raise RuntimeError(f"reading {topic}: {err}")
                offset = int(msg.offset() or 0)
                if partition in ends and offset < ends[partition]:
                    yield partition, offset, msg.value()
            # Positions pass transaction markers, which no message reaches.
            for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends.get(tp.partition, 0):
                    ends.pop(tp.partition, None)
    finally:
        consumer.close()


def _watermarks(consumer: Any, tp: TopicPartition, timeout: float = 15.0) -> tuple[int, int]:
    """A partition's offsets, waiting out a leader election (a topic just created)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_log(
    bootstrap: str,
    audit_topic: str,
    chain_topic: str,
    client_config: Mapping[str, str] | None = None,
) -> AuditLog:
    log = AuditLog()
    for partition, offset, value in read_topic(bootstrap, audit_topic, client_config):
        log.add_event(StoredEvent(partition, offset, value or b""))
    for partition, offset, value in read_topic(bootstrap, chain_topic, client_config):
        try:
            doc = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            doc = None
        log.add_chain(partition, doc, f"chain {partition}@{offset}")
    return log


# -- JSON lines ------------------------------------------------------------------------------
def export_jsonl(log: AuditLog, out: IO[bytes], header: Mapping[str, Any]) -> int:
    """Write ``log`` as JSON lines; returns the number of lines."""
    lines = 1
    out.write(orjson.dumps({"type": "export", **header}) + b"\n")
    for partition in sorted(log.events):
        for event in log.events[partition]:
            out.write(orjson.dumps(_event_line(event)) + b"\n")
            lines += 1
    for partition in sorted(log.chain):
        for record in log.chain[partition]:
            doc = record.to_json()
            doc["type"] = doc.pop("kind")
            out.write(orjson.dumps(doc) + b"\n")
            lines += 1
    return lines


def _event_line(event: StoredEvent) -> dict[str, Any]:
    line: dict[str, Any] = {"type": "event", "partition": event.partition, "offset": event.offset}
    try:
        line["value"] = event.value.decode()
    except UnicodeDecodeError:
        line["value_b64"] = base64.b64encode(event.value).decode()
    return line


def read_jsonl(lines: Iterable[bytes]) -> AuditLog:
    """An :class:`AuditLog` from an export; malformed lines become problems, not errors."""
    log = AuditLog()
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.problems.append(f"line {number}: not JSON")
            continue
        if not isinstance(doc, dict):
            log.problems.append(f"line {number}: not a JSON object")
            continue
        kind = doc.get("type")
        if kind == "export":
            key = doc.get("public_key")
            log.public_key = key if isinstance(key, str) else None
        elif kind == "event":
            event = _event_from_line(doc)
            if event is None:
                log.problems.append(f"line {number}: malformed event line")
            else:
                log.add_event(event)
        elif kind in ("link", "checkpoint"):
            partition = doc.get("partition")
            doc["kind"] = doc.pop("type")
            log.add_chain(partition if isinstance(partition, int) else -1, doc, f"line {number}")
        else:
            log.problems.append(f"line {number}: unknown line type {kind!r}")
    return log


def _event_from_line(doc: dict[str, Any]) -> StoredEvent | None:
    partition, offset = doc.get("partition"), doc.get("offset")
    if not isinstance(partition, int) or not isinstance(offset, int):
        return None
    if isinstance(doc.get("value"), str):
        value = str(doc["value"]).encode()
    elif isinstance(doc.get("value_b64"), str):
        try:
            value = base64.b64decode(doc["value_b64"], validate=True)
        except ValueError:
            return None
    else:
        return None
    return StoredEvent(partition, offset, value)
