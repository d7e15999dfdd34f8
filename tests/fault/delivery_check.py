"""Everything the hub delivered, opened as the operator and compared with the entitlements.

One read_committed consumer reads the whole delivery topic; every frame is opened with
``hub.crypto`` under its recipient's data key, unwrapped from ``_govhub.keys`` with the
hub's KMS (keys cached). Per recipient, the record ids received must equal the ids it is
entitled to — no loss, no duplicate (the same id twice is a failure even across frames),
nothing outside its grants — and every entry must carry the right bytes: the source bytes
for whole-record grants, the projected and masked view for the others. The source topics
are read too, for lineage and content.
"""

from __future__ import annotations

import io
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import fastavro
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from hub.crypto.errors import CryptoError, UnknownKeyError
from hub.crypto.frames import open_frame
from hub.crypto.keys import DataKeyRecord, unwrap_data_key
from hub.crypto.kms import Kms
from hub.delivery import delivery_partition
from hub.registry.framing import unframe
from hub.topics import Topics
from tests.fault.cityworld import CityWorld, Grant, SourceRow

H_RECORD_ID = "govhub-record-id"
EXAMPLES = 8


def read_topic(
    bootstrap: str,
    topic: str,
    on_message: Callable[[Message], None],
    timeout: float = 120.0,
    isolation: str = "read_committed",
) -> int:
    """Feed every committed record of ``topic`` to ``on_message``; returns how many.
    (With ``isolation="read_uncommitted"``: aborted records too.)"""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fault-check-{uuid.uuid4().hex}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10, cached=False
            )
            ends[p] = high
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        count = 0
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: partitions {sorted(pending)} not read to their end within "
                    f"{timeout:.0f}s (a transaction still open?)"
                )
            for msg in consumer.consume(10_000, 0.05):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise AssertionError(f"{topic}: consume error {err}")
                    continue
                on_message(msg)
                count += 1
            positions = consumer.position([TopicPartition(topic, p) for p in pending])
            pending -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
        return count
    finally:
        consumer.close()


@dataclass(frozen=True, slots=True)
class Published:
    """One source record as it sits in its source topic."""

    topic: str
    partition: int
    offset: int
    schema_id: int
    payload: bytes


@dataclass
class Report:
    records: int = 0
    recipients: int = 0
    frames: int = 0
    entries: int = 0
    views_decoded: int = 0
    aborted_frames: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.records:,} source records, {self.recipients:,} recipients served, "
            f"{self.frames:,} frames, {self.entries:,} entries "
            f"({self.views_decoded:,} masked/projected views decoded); "
            f"{self.aborted_frames:,} frames of aborted transactions never delivered"
        )

    def failure(self) -> str:
        shown = self.problems[:40]
        more = len(self.problems) - len(shown)
        tail = f"\n... and {more} more" if more else ""
        return f"{self.summary()}\n" + "\n".join(shown) + tail


class _Schemas:
    """Avro schemas by id, parsed once (source schemas and the router's view schemas)."""

    def __init__(self, lookup: Callable[[int], str]) -> None:
        self._lookup = lookup
        self._parsed: dict[int, Any] = {}

    def decode(self, schema_id: int, payload: bytes) -> dict[str, Any]:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = self._parsed[schema_id] = fastavro.parse_schema(
                orjson.loads(self._lookup(schema_id))
            )
        record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(payload), parsed, None)
        return record


class _DataKeys:
    """Data keys from ``_govhub.keys``, unwrapped with the hub KMS on first use."""

    def __init__(self, records: dict[bytes, DataKeyRecord], kms: Kms) -> None:
        self._records = records
        self._kms = kms
        self._plain: dict[bytes, bytes] = {}

    def for_recipient(self, recipient: str) -> Callable[[bytes], bytes]:
        def key_for(key_id: bytes) -> bytes:
            record = self._records.get(key_id)
            if record is None or record.recipient != recipient:
                raise UnknownKeyError(f"no data key {key_id.hex()} of {recipient}")
            dek = self._plain.get(key_id)
            if dek is None:
                dek = self._plain[key_id] = unwrap_data_key(self._kms, record)
            return dek

        return key_for


def load_data_keys(bootstrap: str, topics: Topics) -> dict[bytes, DataKeyRecord]:
    rows: dict[str, bytes | None] = {}

    def keep(msg: Message) -> None:
        rows[(msg.key() or b"").decode()] = msg.value()

    read_topic(bootstrap, topics.keys, keep)
    records = {}
    for key, value in rows.items():
        if value is None or key.startswith("_"):
            continue  # tombstones, and the hub's own secrets (pseudonym root)
        record = DataKeyRecord.from_json(value)
        records[record.key_id] = record
    return records


def load_sources(bootstrap: str, topics: Iterable[str]) -> tuple[dict[str, Published], list[str]]:
    """Source records by record id, and the ids found more than once."""
    published: dict[str, Published] = {}
    repeated: list[str] = []

    def keep(msg: Message) -> None:
        headers = dict(msg.headers() or ())
        record_id = headers[H_RECORD_ID].decode()
        schema_id, payload = unframe(msg.value() or b"")
        if record_id in published:
            repeated.append(record_id)
        published[record_id] = Published(
            msg.topic() or "", msg.partition() or 0, msg.offset() or 0, schema_id, bytes(payload)
        )

    for topic in topics:
        read_topic(bootstrap, topic, keep)
    return published, repeated


def _id_order(record_id: str) -> tuple[str, int]:
    """``dibao:12`` and ``fc-dibao:dibao.jsonl:12``: by source, then by number."""
    head, _, number = record_id.rpartition(":")
    return (head, int(number)) if number.isdigit() else (record_id, 0)


def examples(ids: Iterable[str]) -> str:
    ordered = sorted(ids, key=_id_order)
    return ", ".join(ordered[:EXAMPLES]) + (" ..." if len(ordered) > EXAMPLES else "")


def check_deliveries(
    bootstrap: str,
    topics: Topics,
    world: CityWorld,
    rows: list[SourceRow],
    expected: dict[str, set[str]],
    kms: Kms,
    schema_of: Callable[[int], str],
) -> Report:
    """Open every frame of the delivery topic and compare with ``expected``."""
    report = Report(records=len(rows))
    problems = report.problems
    source_topics = {
        code: topics.source(s.resource.department, code) for code, s in world.samples.items()
    }
    published, repeated = load_sources(bootstrap, source_topics.values())
    rows_by_id = {r.record_id: r for r in rows}
    if repeated:
        problems.append(f"source topics hold {len(repeated)} ids twice: {examples(repeated)}")
    if published.keys() != rows_by_id.keys():
        lost = rows_by_id.keys() - published.keys()
        extra = published.keys() - rows_by_id.keys()
        problems.append(
            f"source topics: {len(lost)} generated records missing ({examples(lost)}), "
            f"{len(extra)} unknown ({examples(extra)})"
        )

    keys = _DataKeys(load_data_keys(bootstrap, topics), kms)
    schemas = _Schemas(schema_of)
    grants: dict[str, Grant] = {g.id: g for g in world.grants}
    source_views: dict[str, dict[str, Any]] = {}
    received: dict[str, set[str]] = defaultdict(set)
    duplicates: dict[str, list[str]] = defaultdict(list)
    last_offset: dict[tuple[str, str, int], int] = {}
    bad: Counter[str] = Counter()
    partitions = [0]

    def note(kind: str, detail: str) -> None:
        bad[kind] += 1
        if bad[kind] <= EXAMPLES:
            problems.append(f"{kind}: {detail}")

    def on_frame(msg: Message) -> None:
        report.frames += 1
        recipient = (msg.key() or b"").decode()
        if msg.partition() != delivery_partition(recipient, partitions[0]):
            note("wrong delivery partition", f"{recipient} in partition {msg.partition()}")
        try:
            header, entries = open_frame(
                msg.value() or b"", recipient, keys.for_recipient(recipient)
            )
        except CryptoError as exc:
            note("frame cannot be opened", f"{recipient} @{msg.partition()}/{msg.offset()}: {exc}")
            return
        grant = grants.get(header.subscription)
        if grant is None or grant.recipient != recipient or grant.resource != header.resource:
            note("frame under a foreign subscription", f"{recipient}: {header.subscription}")
            return
        position = (header.subscription, header.resource, header.source_partition)
        seen_up_to = last_offset.get(position)
        if seen_up_to is not None and header.first_offset <= seen_up_to:
            # The subscriber SDK's replay guard would drop this frame.
            note(
                "frame behind an earlier one",
                f"{recipient} {header.subscription} partition {header.source_partition}: "
                f"{header.first_offset}..{header.last_offset} after ..{seen_up_to}",
            )
        last_offset[position] = max(header.last_offset, seen_up_to or -1)
        got = received[recipient]
        for entry in entries:
            report.entries += 1
            record_id = entry.record_id
            if record_id in got:
                duplicates[recipient].append(record_id)
            got.add(record_id)
            source = published.get(record_id)
            if source is None:
                note("unknown record id", f"{recipient}: {record_id}")
                continue
            if (entry.topic, entry.partition, entry.offset) != (
                source.topic,
                source.partition,
                source.offset,
            ):
                note(
                    "wrong lineage",
                    f"{recipient} {record_id}: {entry.topic}/{entry.partition}/{entry.offset}",
                )
            if grant.passthrough:
                if entry.payload != source.payload or entry.schema_id != source.schema_id:
                    note("altered whole record", f"{recipient} {record_id}")
                continue
            original = source_views.get(record_id)
            if original is None:
                original = source_views[record_id] = schemas.decode(
                    source.schema_id, source.payload
                )
            report.views_decoded += 1
            try:
                delivered = schemas.decode(entry.schema_id, entry.payload)
            except Exception as exc:  # any decoding failure is a finding, not a crash
                note("undecodable view", f"{recipient} {record_id}: {exc}")
                continue
            wanted = grant.expected_view(original)
            if delivered != wanted:
                diff = {
                    k: (delivered.get(k), wanted.get(k))
                    for k in delivered.keys() | wanted.keys()
                    if delivered.get(k) != wanted.get(k)
                }
                note("wrong view", f"{recipient} {record_id} ({grant.id}): {diff}")

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-check-meta"})
    try:
        meta = consumer.list_topics(topics.delivery, timeout=10)
        partitions[0] = len(meta.topics[topics.delivery].partitions)
    finally:
        consumer.close()
    read_topic(bootstrap, topics.delivery, on_frame)
    written = read_topic(bootstrap, topics.delivery, lambda msg: None, isolation="read_uncommitted")
    report.aborted_frames = written - report.frames

    report.recipients = sum(1 for ids in received.values() if ids)
    for kind, count in bad.items():
        if count > EXAMPLES:
            problems.append(f"{kind}: {count} in all")
    for recipient in sorted(received.keys() | expected.keys()):
        want = expected.get(recipient)
        got = received.get(recipient, set())
        if want is None:
            problems.append(f"{recipient}: not a recipient of this world, got {len(got)} records")
            continue
        lost = want - got
        if lost:
            problems.append(f"{recipient}: lost {len(lost)} of {len(want)}: {examples(lost)}")
        outside = got - want
        if outside:
            regions = sorted({rows_by_id[r].row["region_code"] for r in outside if r in rows_by_id})
            problems.append(
                f"{recipient}: {len(outside)} records it is not entitled to "
                f"({examples(outside)}; regions {regions[:5]})"
            )
        dups = duplicates.get(recipient)
        if dups:
            problems.append(f"{recipient}: {len(dups)} duplicates: {examples(dups)}")
    return report
