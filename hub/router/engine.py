"""The exchange step: source records in, per-recipient encrypted frames out.

Pure with respect to Kafka: the service hands it consumed messages and writes what it
returns inside one transaction. Per record it reads three headers, looks up the routes of
the record's region (O(levels)), and decodes Avro only when some route's view needs it —
once per record, encoded once per distinct view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.crypto.frames import FrameEntry, FrameHeader
from hub.crypto.suites import PayloadSuite
from hub.delivery import RECORD_COUNT_HEADER, delivery_partition
from hub.policy.views import CompiledView, View, ViewError, compile_view
from hub.regions import InvalidRegionCode, Level, level_of
from hub.registry.framing import FramingError, unframe
from hub.registry.schemas import AvroCodec, RecordDecodeError, RecordEncodeError, SchemaError
from hub.registry.store import SchemaNotFound
from hub.router.keys import SUITES, KeyBook
from hub.router.routing import Route, RoutingTable
from hub.topics import Topics

log = logging.getLogger(__name__)

H_REGION = "govhub-region"
H_RECORD_ID = "govhub-record-id"
H_INGESTED_AT = "govhub-ingested-at"
H_TRACE = "govhub-trace"
H_DLQ_REASON = "govhub-dlq-reason"
H_DLQ_DETAIL = "govhub-dlq-detail"
H_DLQ_STAGE = "govhub-dlq-stage"
H_DLQ_TOPIC = "govhub-dlq-source-topic"
H_DLQ_PARTITION = "govhub-dlq-source-partition"
H_DLQ_OFFSET = "govhub-dlq-source-offset"

TIER_NAMES = {
    Level.PROVINCE: "province",
    Level.CITY: "city",
    Level.COUNTY: "county",
    Level.TOWNSHIP: "township",
    Level.VILLAGE: "village",
}


class SchemaSource(Protocol):
    """What the engine needs of the schema registry."""

    def schema(self, schema_id: int) -> str: ...
    def codec(self, schema_id: int) -> AvroCodec: ...
    def register_schema(self, schema: str) -> int: ...


_REGION_CACHE_SIZE = 100_000


class Message(Protocol):
    """The part of ``confluent_kafka.Message`` the engine reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int = -1


@dataclass(slots=True)
class ResourceStats:
    records_in: int = 0
    unrouted: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)  # by tier
    frames: dict[str, int] = field(default_factory=dict)
    frame_bytes: dict[str, int] = field(default_factory=dict)
    oldest_ingest_ms: int | None = None


@dataclass(slots=True)
class Outcome:
    frames: list[OutRecord] = field(default_factory=list)
    dead_letters: list[OutRecord] = field(default_factory=list)
    dead_reasons: dict[str, int] = field(default_factory=dict)
    stats: dict[str, ResourceStats] = field(default_factory=dict)


class DeadLetter(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class _ViewPlan:
    compiled: CompiledView
    schema_id: int
    codec: AvroCodec


@dataclass(slots=True)
class _Pending:
    route: Route
    tier: str
    resource: str
    topic: str
    partition: int
    entries: list[FrameEntry] = field(default_factory=list)
    size: int = 0


class ExchangeEngine:
    def __init__(
        self,
        topics: Topics,
        registry: SchemaSource,
        routing_table: Callable[[str], RoutingTable | None],
        tier_of: Callable[[str], str],
        keybook: KeyBook,
        delivery_partitions: int,
        max_frame_entries: int = 500,
        max_frame_bytes: int = 512_000,
    ) -> None:
        self._topics = topics
        self._registry = registry
        self._routing_table = routing_table
        self._tier_of = tier_of
        self._keybook = keybook
        self._delivery_partitions = delivery_partitions
        self._max_entries = max_frame_entries
        self._max_bytes = max_frame_bytes
        # Keyed by id(view): views are interned per routing table (hashing a View per
        # record costs more than the lookup); cleared with the tables on policy change.
        self._plans: dict[tuple[int, int], _ViewPlan] = {}
        self._valid_regions: set[str] = set()
        self._resource_of_topic: dict[str, str] = {}
        self._codecs: dict[int, AvroCodec] = {}

    def invalidate(self) -> None:
        """Forget compiled views (after a policy change)."""
        self._plans.clear()

    # -- per batch -----------------------------------------------------------------------
    def process(self, messages: Sequence[Message]) -> Outcome:
        outcome = Outcome()
        pending: dict[tuple[int, int], _Pending] = {}
        for msg in messages:
            topic = msg.topic() or ""
            try:
                self._route_one(msg, topic, pending, outcome)
            except DeadLetter as dead:
                self._dead_letter(msg, topic, dead, outcome)
        for batch in pending.values():
            if batch.entries:
                self._seal(batch, outcome)
        return outcome

    def _route_one(
        self,
        msg: Message,
        topic: str,
        pending: dict[tuple[int, int], _Pending],
        outcome: Outcome,
    ) -> None:
        resource_code = self._resource_of_topic.get(topic)
        if resource_code is None:
            try:
                _, resource_code = self._topics.parse_source(topic)
            except ValueError as exc:
                raise DeadLetter("unknown-topic", str(exc)) from None
            self._resource_of_topic[topic] = resource_code
        table = self._routing_table(resource_code)
        if table is None:
            raise DeadLetter("unknown-resource", f"resource {resource_code!r} not in catalogue")
        stats = outcome.stats.get(resource_code)
        if stats is None:
            stats = outcome.stats[resource_code] = ResourceStats()
        stats.records_in += 1

        region = record_id = None
        ingested_at = 0
        for name, raw in msg.headers() or ():
            if name == H_REGION:
                region = raw.decode("ascii", "replace")
            elif name == H_RECORD_ID:
                record_id = raw.decode("utf-8", "replace")
            elif name == H_INGESTED_AT:
                try:
                    ingested_at = int(raw)
                except ValueError:
                    raise DeadLetter("bad-header", f"{H_INGESTED_AT} is not an integer") from None
        if region is None:
            raise DeadLetter("missing-region", f"header {H_REGION} is missing")
        if region not in self._valid_regions:
            try:
                level_of(region)
            except InvalidRegionCode as exc:
                raise DeadLetter("invalid-region", str(exc)) from None
            if len(self._valid_regions) >= _REGION_CACHE_SIZE:
                self._valid_regions.clear()
            self._valid_regions.add(region)
        if not record_id:
            raise DeadLetter("missing-record-id", f"header {H_RECORD_ID} is missing")
        value = msg.value()
        if value is None:
            raise DeadLetter("empty-value", "record has no value")
        try:
            schema_id, payload = unframe(value)
        except FramingError as exc:
            raise DeadLetter("bad-framing", str(exc)) from None

        routes = list(table.index.match(region))
        if not routes:
            stats.unrouted += 1
            return
        if stats.oldest_ingest_ms is None or ingested_at < stats.oldest_ingest_ms:
            stats.oldest_ingest_ms = ingested_at

        partition = msg.partition() or 0
        offset = msg.offset() or 0
        # Shape for every route first: a record that fails for one view is dead-lettered
        # whole, never delivered to some recipients and not to others.
        # Recipients with the same view share one entry object (its bytes are identical);
        # None marks a view whose row filter rejects the record.
        decoded: dict[str, Any] | None = None
        by_view: dict[int, tuple[FrameEntry, int] | None] = {}
        for route in routes:
            view_key = id(route.view)
            if view_key in by_view:
                continue
            if route.identity:
                view_schema_id, view_payload = schema_id, bytes(payload)
            else:
                plan = self._plan(schema_id, route.view)
                if decoded is None:
                    decoded = self._decode(schema_id, payload)
                try:
                    if not plan.compiled.accepts(decoded):
                        by_view[view_key] = None
                        continue
                    if plan.compiled.reshapes:
                        view_schema_id = plan.schema_id
                        view_payload = plan.codec.encode(plan.compiled.apply(decoded))
                    else:  # a filter only: the source bytes pass through
                        view_schema_id, view_payload = schema_id, bytes(payload)
                except (RecordEncodeError, KeyError, TypeError, ValueError) as exc:
                    raise DeadLetter("view-failed", str(exc)) from None
            entry = FrameEntry(
                view_schema_id, topic, partition, offset, record_id, ingested_at, view_payload
            )
            # Entry overhead: 32 bytes of fixed fields plus the topic and record id.
            by_view[view_key] = (entry, len(view_payload) + len(record_id) + len(topic) + 32)
        for route in routes:
            shaped = by_view[id(route.view)]
            if shaped is None:
                continue
            entry, size = shaped
            slot = (id(route), partition)
            batch = pending.get(slot)
            if batch is None:
                tier = self._tier_of(route.recipient)
                batch = pending[slot] = _Pending(route, tier, resource_code, topic, partition)
            batch.entries.append(entry)
            batch.size += size
            if len(batch.entries) >= self._max_entries or batch.size >= self._max_bytes:
                self._seal(batch, outcome)
                batch.entries = []
                batch.size = 0

    def _decode(self, schema_id: int, payload: memoryview) -> dict[str, Any]:
        codec = self._codecs.get(schema_id)
        if codec is None:
            try:
                codec = self._codecs[schema_id] = self._registry.codec(schema_id)
            except SchemaNotFound:
                raise DeadLetter(
                    "unknown-schema", f"schema id {schema_id} not registered"
                ) from None
        try:
            return codec.decode(payload)
        except RecordDecodeError as exc:
            raise DeadLetter("bad-avro", str(exc)) from None

    def _plan(self, schema_id: int, view: View) -> _ViewPlan:
        plan = self._plans.get((schema_id, id(view)))
        if plan is None:
            try:
                writer = self._registry.schema(schema_id)
            except SchemaNotFound:
                raise DeadLetter(
                    "unknown-schema", f"schema id {schema_id} not registered"
                ) from None
            try:
                compiled = compile_view(view, writer)
                view_id = self._registry.register_schema(compiled.schema_json)
            except (ViewError, SchemaError) as exc:
                raise DeadLetter("view-failed", str(exc)) from None
            plan = _ViewPlan(compiled, view_id, AvroCodec(compiled.schema_json))
            self._plans[(schema_id, id(view))] = plan
        return plan

    def _seal(self, batch: _Pending, outcome: Outcome) -> None:
        route = batch.route
        suite = SUITES.get(route.suite) if route.suite else None
        record, sealer = self._keybook.sealer_for(route.recipient, suite)
        header = FrameHeader(
            suite=PayloadSuite(record.suite),
            recipient=route.recipient,
            resource=batch.resource,
            subscription=route.subscription,
            key_id=record.key_id,
            source_partition=batch.partition,
            first_offset=batch.entries[0].offset,
            last_offset=batch.entries[-1].offset,
        )
        data = sealer.seal(header, batch.entries)
        outcome.frames.append(
            OutRecord(
                self._topics.delivery,
                route.recipient.encode(),
                data,
                [(RECORD_COUNT_HEADER, str(len(batch.entries)).encode())],
                delivery_partition(route.recipient, self._delivery_partitions),
            )
        )
        stats = outcome.stats[batch.resource]
        tier = batch.tier
        stats.deliveries[tier] = stats.deliveries.get(tier, 0) + len(batch.entries)
        stats.frames[tier] = stats.frames.get(tier, 0) + 1
        stats.frame_bytes[tier] = stats.frame_bytes.get(tier, 0) + len(data)

    def _dead_letter(self, msg: Message, topic: str, dead: DeadLetter, outcome: Outcome) -> None:
        try:
            department, _ = self._topics.parse_source(topic)
        except ValueError:
            department = "unknown"
        headers = [(k, v) for k, v in (msg.headers() or ()) if not k.startswith("govhub-dlq-")]
        headers += [
            (H_DLQ_REASON, dead.reason.encode()),
            (H_DLQ_DETAIL, dead.detail.encode()[:1000]),
            (H_DLQ_STAGE, b"router"),
            (H_DLQ_TOPIC, topic.encode()),
            (H_DLQ_PARTITION, str(msg.partition()).encode()),
            (H_DLQ_OFFSET, str(msg.offset()).encode()),
        ]
        # The value stays as it was (Avro, not readable without the schema); the key may be
        # a personal identifier, so it is not copied.
        outcome.dead_letters.append(
            OutRecord(self._topics.dlq(department), None, msg.value(), headers)
        )
        outcome.dead_reasons[dead.reason] = outcome.dead_reasons.get(dead.reason, 0) + 1
