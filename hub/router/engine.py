"""The exchange step: source records in, per-recipient encrypted frames out.

Pure with respect to Kafka: the service hands it consumed messages and writes what it
returns inside one transaction. Per record it reads three headers, looks up the routes of
the record's region (O(levels)), and decodes Avro only when some route's view needs it —
once per record, encoded once per distinct view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.audit.digest import FrameLineage, hasher
from hub.crypto.frames import HeaderTemplate
from hub.crypto.suites import PayloadSuite
from hub.delivery import RECORD_COUNT_HEADER, delivery_partition
from hub.policy.splice import SpliceError, compile_splice
from hub.policy.views import CompiledView, View, ViewError, compile_view
from hub.regions import InvalidRegionCode, Level, level_of
from hub.registry.schemas import AvroCodec, RecordDecodeError, RecordEncodeError, SchemaError
from hub.registry.store import SchemaNotFound
from hub.router.batch import Plan, route_python
from hub.router.batch import route as route_batch
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


_SHA256 = hasher("sha256")
_SM3 = hasher("sm3")

_PLAN_CACHE_SIZE = 200_000  # (topic, region, schema) plans kept between policy changes


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


AUDIT_FIELDS = (
    "recipient",
    "subscription",
    "resource",
    "source_partition",
    "first_offset",
    "last_offset",
    "entries",
    "key_id",
    "tag",
    "offsets",
    "ids_alg",
    "ids_digest",
    "record_ids",
    "view_schemas",
)
"""Columns of a delivery audit row (one per frame): who received which source records
(``record_ids``, their sorted-JSON digest under ``ids_alg`` — SM3 for the 国密 suite — and
the source ``offsets`` as ``[first, last]`` runs) in which frame, under which view schemas."""


@dataclass(slots=True)
class Outcome:
    frames: list[OutRecord] = field(default_factory=list)
    dead_letters: list[OutRecord] = field(default_factory=list)
    dead_reasons: dict[str, int] = field(default_factory=dict)
    stats: dict[str, ResourceStats] = field(default_factory=dict)
    audit: list[list[Any]] = field(default_factory=list)
    """One row per frame, columns as :data:`AUDIT_FIELDS`."""
    route_seconds: float = 0.0
    """Time in the batch loop (headers, routing, shaping, entry encoding)."""


class DeadLetter(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class _Slot:
    """One route of one routing table, as the batch loop addresses it."""

    route: Route
    tier: str
    resource: str
    kafka_key: bytes
    delivery_partition: int
    suite: PayloadSuite | None
    template: HeaderTemplate | None = None
    template_key: bytes = b""
    key_hex: str = ""


class _PythonShaper:
    """A view the native splicer does not cover (row filters, pseudonyms, some date
    masks): decode once per record — shared by every such view of the record — then
    filter, project and mask, and encode the view."""

    __slots__ = ("_compiled", "_decode", "_encode", "_last")

    def __init__(
        self, compiled: CompiledView, decode: Callable[[bytes], dict[str, Any]], codec: AvroCodec
    ) -> None:
        self._compiled = compiled
        self._decode = decode
        self._encode = codec.encode

    def __call__(self, payload: bytes) -> bytes | None:
        record = self._decode(payload)
        compiled = self._compiled
        try:
            if not compiled.accepts(record):
                return None
            if not compiled.reshapes:
                return payload  # a filter only: the source bytes pass through
            return self._encode(compiled.apply(record))
        except (RecordEncodeError, KeyError, TypeError, ValueError) as exc:
            raise DeadLetter("view-failed", str(exc)) from None


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
        native: bool = True,
    ) -> None:
        self._topics = topics
        self._registry = registry
        self._routing_table = routing_table
        self._tier_of = tier_of
        self._keybook = keybook
        self._delivery_partitions = delivery_partitions
        self._max_entries = max_frame_entries
        self._max_bytes = max_frame_bytes
        self._route_batch = route_batch if native else route_python
        # Everything below is derived from the routing tables and cleared with them.
        self._cache: dict[tuple[str, bytes, int], Plan] = {}
        self._slots: list[_Slot] = []
        self._slot_of: dict[int, int] = {}  # id(route) -> slot
        self._shapers: dict[tuple[int, int], tuple[Callable[[bytes], bytes | None], int]] = {}
        self._stats_keys: list[str] = []
        self._stats_index: dict[str, int] = {}
        self._resource_of_topic: dict[str, str] = {}
        self._codecs: dict[int, AvroCodec] = {}
        self._last_decoded: tuple[bytes | None, dict[str, Any]] = (None, {})
        self._lineages: dict[tuple[bytes, bool], FrameLineage] = {}

    def invalidate(self) -> None:
        """Forget compiled plans and views (after a policy change)."""
        self._cache.clear()
        self._slots.clear()
        self._slot_of.clear()
        self._shapers.clear()

    # -- per batch -----------------------------------------------------------------------
    def process(self, messages: Sequence[Message]) -> Outcome:
        if len(self._cache) > _PLAN_CACHE_SIZE:
            self._cache.clear()
        batch = messages if isinstance(messages, list) else list(messages)
        started = time.perf_counter()
        blocks, dead, stats = self._route_batch(
            batch, self._cache, self._resolve, self._max_entries, self._max_bytes
        )
        outcome = Outcome(route_seconds=time.perf_counter() - started)
        for index, (records_in, unrouted, oldest) in enumerate(stats):
            if records_in:
                outcome.stats[self._stats_keys[index]] = ResourceStats(
                    records_in, unrouted, {}, {}, {}, oldest if oldest >= 0 else None
                )
        for index, problem, detail in dead:
            msg = batch[index]
            topic = msg.topic() or ""
            self._dead_letter(msg, topic, _as_dead_letter(problem, detail), outcome)
        for slot, partition, block, count, first, last in blocks:
            self._seal(self._slots[slot], partition, block, count, first, last, outcome)
        self._lineages.clear()
        return outcome

    def _resolve(self, topic: str, region_raw: bytes, schema_id: int) -> Plan | DeadLetter:
        """The plan for records of one topic, region and writer schema (cached by the
        batch loop until the routing tables change)."""
        try:
            return self._plan_for(topic, region_raw, schema_id)
        except DeadLetter as dead:
            return dead

    def _plan_for(self, topic: str, region_raw: bytes, schema_id: int) -> Plan:
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
        region = region_raw.decode("ascii", "replace")
        try:
            level_of(region)
        except InvalidRegionCode as exc:
            raise DeadLetter("invalid-region", str(exc)) from None
        stats_index = self._stats_index.get(resource_code)
        if stats_index is None:
            stats_index = self._stats_index[resource_code] = len(self._stats_keys)
            self._stats_keys.append(resource_code)
        by_view: dict[int, tuple[Callable[[bytes], bytes | None] | None, int, list[int]]] = {}
        for route in table.index.match(region):
            group = by_view.get(id(route.view))
            if group is None:
                if route.identity:
                    group = (None, schema_id, [])
                else:
                    shaper, view_id = self._shaper(schema_id, route.view)
                    group = (shaper, view_id, [])
                by_view[id(route.view)] = group
            group[2].append(self._slot(route, resource_code))
        return stats_index, tuple((s, v, tuple(slots)) for s, v, slots in by_view.values())

    def _slot(self, route: Route, resource: str) -> int:
        slot = self._slot_of.get(id(route))
        if slot is None:
            slot = self._slot_of[id(route)] = len(self._slots)
            self._slots.append(
                _Slot(
                    route,
                    self._tier_of(route.recipient),
                    resource,
                    route.recipient.encode(),
                    delivery_partition(route.recipient, self._delivery_partitions),
                    SUITES.get(route.suite) if route.suite else None,
                )
            )
        return slot

    def _shaper(self, schema_id: int, view: View) -> tuple[Callable[[bytes], bytes | None], int]:
        found = self._shapers.get((schema_id, id(view)))
        if found is not None:
            return found
        try:
            writer = self._registry.schema(schema_id)
        except SchemaNotFound:
            raise DeadLetter("unknown-schema", f"schema id {schema_id} not registered") from None
        try:
            native = compile_splice(view, writer)
            if native is not None:
                shaper: Callable[[bytes], bytes | None] = native.program
                schema_json = native.schema_json
            else:
                compiled = compile_view(view, writer)
                schema_json = compiled.schema_json
                shaper = _PythonShaper(
                    compiled, self._decoder(schema_id), AvroCodec(compiled.schema_json)
                )
            view_id = self._registry.register_schema(schema_json)
        except (ViewError, SchemaError) as exc:
            raise DeadLetter("view-failed", str(exc)) from None
        found = self._shapers[(schema_id, id(view))] = (shaper, view_id)
        return found

    def _decoder(self, schema_id: int) -> Callable[[bytes], dict[str, Any]]:
        codec = self._codecs.get(schema_id)
        if codec is None:
            codec = self._codecs[schema_id] = self._registry.codec(schema_id)
        decode = codec.decode

        def decode_once(payload: bytes) -> dict[str, Any]:
            # Several Python-shaped views of one record share one decode.
            last_payload, last = self._last_decoded
            if last_payload is payload:
                return last
            try:
                record = decode(payload)
            except RecordDecodeError as exc:
                raise DeadLetter("bad-avro", str(exc)) from None
            self._last_decoded = (payload, record)
            return record

        return decode_once

    def _seal(
        self,
        slot: _Slot,
        partition: int,
        block: bytes,
        count: int,
        first: int,
        last: int,
        outcome: Outcome,
    ) -> None:
        route = slot.route
        record, sealer = self._keybook.sealer_for(route.recipient, slot.suite)
        if slot.template is None or slot.template_key != record.key_id:
            slot.template = HeaderTemplate(
                PayloadSuite(record.suite),
                record.key_id,
                route.recipient,
                slot.resource,
                route.subscription,
            )
            slot.template_key = record.key_id
            slot.key_hex = record.key_id.hex()
        data = sealer.seal_block(slot.template.encode(partition, first, last), block)
        national = record.suite == PayloadSuite.SM4_GCM
        # Recipients with the same view and territory get identical entry blocks: their
        # audit lineage is read once per batch.
        lineage = self._lineages.get((block, national))
        if lineage is None:
            lineage = FrameLineage(block, digest=_SM3 if national else _SHA256)
            self._lineages[(block, national)] = lineage
        outcome.frames.append(
            OutRecord(
                self._topics.delivery,
                slot.kafka_key,
                data,
                [(RECORD_COUNT_HEADER, b"%d" % count)],
                slot.delivery_partition,
            )
        )
        outcome.audit.append(
            [
                route.recipient,
                route.subscription,
                slot.resource,
                partition,
                first,
                last,
                count,
                slot.key_hex,
                data[-16:].hex(),
                lineage.offsets,
                "sm3" if national else "sha256",
                lineage.digest,
                lineage.record_ids,
                lineage.view_schemas,
            ]
        )
        stats = outcome.stats[slot.resource]
        tier = slot.tier
        stats.deliveries[tier] = stats.deliveries.get(tier, 0) + count
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


def _as_dead_letter(problem: Any, detail: str | None) -> DeadLetter:
    if isinstance(problem, str):
        return DeadLetter(problem, detail or "")
    if isinstance(problem, DeadLetter):
        return problem
    if isinstance(problem, SpliceError):
        return DeadLetter("bad-avro", str(problem))
    log.error("view shaping failed unexpectedly: %r", problem)
    return DeadLetter("view-failed", f"{type(problem).__name__}: {problem}")
