"""Publishing department records into the hub: admit, produce, confirm, checkpoint.

Valid records go to ``govhub.src.<dept>.<resource>`` as Confluent-framed Avro with the
design's headers; rejected ones go to ``govhub.dlq.<dept>`` with the reason and personal
fields redacted. The checkpoint in ``_govhub.connect-offsets`` is written only after Kafka
acknowledged every record before it, so a crash re-reads, never skips.

A batch goes through three steps, so a runner can overlap them with the source:

- :meth:`Publisher.prepare` admits every record (quality rules and Avro encoding, compiled
  per resource: :class:`hub.catalogue.admission.Admission`). No Kafka; it may run while
  the previous batch is still on its way.
- :meth:`Publisher.send` produces the batch. Batches go out in the order of their turns
  (:meth:`Publisher.take_turn`, taken when the batch was read), one in flight at a time:
  ``send`` waits, in its own thread, until the batch before it is confirmed, so the next
  batch follows the previous checkpoint at once.
- :meth:`Publisher.confirm` waits until Kafka acknowledged all of it, then writes the
  checkpoint. Only then may the source let go of the records.

:meth:`Publisher.publish` does all three. Each :class:`Batch` carries the verdicts: the
records refused and why, for sources that answer per record (the HTTP source).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson
from confluent_kafka import KafkaError, Message

from connectors.base import SourceRecord
from hub import kafka, metrics
from hub.catalogue.admission import Admission, Verdict
from hub.catalogue.model import Resource
from hub.catalogue.quality import QualityViolation, redact_personal
from hub.controlstate import CompactedTable
from hub.registry.schemas import AvroCodec
from hub.router.engine import (
    H_DLQ_DETAIL,
    H_DLQ_REASON,
    H_DLQ_STAGE,
    H_INGESTED_AT,
    H_RECORD_ID,
    H_REGION,
    H_TRACE,
)
from hub.topics import Topics

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

# How long a batch waits for its turn: a safety net against a batch that is never
# confirmed, well past what the batches before it can take (up to three runner jobs, each
# at most a 60 s flush and a 10 s checkpoint).
SEND_WAIT_S = 600.0


# How long a batch may wait for Kafka's acknowledgement, and then its checkpoint: long
# enough to ride out a broker failing over (leader elections, a paused broker fenced).
CONFIRM_TIMEOUT_S = 60.0


class PublishError(Exception):
    """Kafka refused records; the checkpoint was not advanced."""


@dataclass
class PublishStats:
    read: int = 0
    published: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record went to the dead-letter topic instead of the source topic."""

    reason: str  # a quality rule, "schema-mismatch" or "unparsable"
    detail: str


@dataclass(eq=False)
class Batch:
    """One batch on its way through the publisher."""

    records: Sequence[SourceRecord]
    verdicts: list[Verdict | None]  # per record: admitted (value, key, region) or why not
    rejections: dict[int, Rejection]  # index in ``records`` → why it was refused
    started: float  # perf_counter when prepared (for the batch-seconds metric)
    turn: int  # batches are sent in the order of their turns
    sent: bool = False
    confirmed: bool = False

    @property
    def published(self) -> int:
        return len(self.records) - len(self.rejections)


@runtime_checkable
class VerdictReceiver(Protocol):
    """A source that answers for each record (the HTTP source) receives the publisher's
    verdicts, just before ``ack``, instead of judging the records again itself."""

    def receive_verdicts(
        self, records: Sequence[SourceRecord], rejections: Mapping[int, Rejection]
    ) -> None: ...


@runtime_checkable
class SignInAudited(Protocol):
    """A source that signs callers in (the HTTP source) reports refused sign-ins to the
    hub's audit trail through the ``write`` it is given."""

    def audit_sign_ins(self, write: Callable[[Mapping[str, Any]], Any]) -> None: ...


class Publisher:
    def __init__(
        self,
        *,
        connector: str,
        bootstrap_servers: str,
        topics: Topics,
        resource: Resource,
        schema_id: int,
        codec: AvroCodec,
        checkpoints: CompactedTable,
        client_config: Mapping[str, str] | None = None,
        regions: Container[str] | None = None,
        confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
    ) -> None:
        """``regions``: the region codes records may carry (the party hierarchy); None
        checks only that codes are well formed. ``confirm_timeout_s``: how long a batch,
        then its checkpoint, may wait for Kafka before the batch fails."""
        self.connector = connector
        self._confirm_timeout_s = confirm_timeout_s
        self._topics = topics
        self._resource = resource
        self._schema_id = schema_id
        self._codec = codec
        self.admission = Admission(resource, codec, schema_id)
        self._checkpoints = checkpoints
        self._topic = topics.source(resource.department, resource.code)
        self._dlq = topics.dlq(resource.department)
        # Delivery reports only for failures, to one callback for the producer: one batch
        # is in flight at a time, so a failure belongs to it.
        self._failures: list[str] = []
        config: dict[str, Any] = {**(client_config or {}), "on_delivery": self._on_delivery}
        self._producer = kafka.producer(
            bootstrap_servers,
            f"govhub-connector-{connector}",
            config,
            delivery_report_only_error=True,
        )
        # A new idempotent producer first obtains its producer id, in the background; on a
        # busy broker that takes up to half a second. Writing no rows creates the checkpoint
        # writer's producer now, so neither id is waited for in the first batch's way.
        checkpoints.put_many([])
        self._in_flight: Batch | None = None
        self._broken: str | None = None  # why nothing more may be sent
        self._turn = threading.Condition()  # guards _in_flight, _next_turn, _broken
        self._turn_lock = threading.Lock()
        self._turns_taken = 0
        self._next_turn = 1  # the turn allowed to send once nothing is in flight
        self.stats = PublishStats()
        self._regions = regions
        self._read_counter = metrics.CONNECTOR_RECORDS_READ.labels(connector)
        self._published_counter = metrics.CONNECTOR_RECORDS_PUBLISHED.labels(
            connector, resource.code
        )

    def checkpoint(self) -> Mapping[str, Any] | None:
        row = self._checkpoints.get(self.connector)
        return None if row is None else row.get("position")

    # -- the three steps ---------------------------------------------------------------

    def publish(self, records: Sequence[SourceRecord], turn: int | None = None) -> Batch:
        """Publish one batch and advance the checkpoint once Kafka acked all of it.

        ``turn``: the batch's place in the order (:meth:`take_turn`), for callers that run
        several ``publish`` calls at once; by default the next one."""
        try:
            batch = self.prepare(records, turn)
        except BaseException as exc:
            self._break(f"a batch could not be prepared: {exc!r}")
            raise
        self.send(batch)
        self.confirm(batch)
        return batch

    def take_turn(self) -> int:
        """The next batch's place in the order in which batches are sent."""
        with self._turn_lock:
            self._turns_taken += 1
            return self._turns_taken

    def prepare(self, records: Sequence[SourceRecord], turn: int | None = None) -> Batch:
        """Admit every record: the quality rules, the schema, the encoding. No Kafka."""
        started = time.perf_counter()
        if turn is None:
            turn = self.take_turn()
        verdicts = self.admission.admit_batch([r.value for r in records], self._regions)
        rejections: dict[int, Rejection] = {}
        for index, verdict in enumerate(verdicts):
            if type(verdict) is tuple:
                continue
            if isinstance(verdict, QualityViolation):
                rejections[index] = Rejection(verdict.reason, verdict.detail)
            else:  # None: the source could not read the input
                record = records[index]
                rejections[index] = Rejection("unparsable", record.error or "unparsable")
        self.stats.read += len(records)
        self._read_counter.inc(len(records))
        return Batch(records, verdicts, rejections, started, turn)

    def send(self, batch: Batch, wait_s: float = SEND_WAIT_S) -> None:
        """Produce the batch (records and dead letters).

        Waits up to ``wait_s`` until the batches of earlier turns are confirmed (by other
        threads); raises :class:`PublishError` when one of them failed, so nothing follows
        a batch whose checkpoint was not written."""
        with self._turn:
            if batch.sent:
                raise RuntimeError("send: this batch was sent already")

            def its_turn() -> bool:
                if self._broken is not None:
                    return True
                return self._in_flight is None and self._next_turn == batch.turn

            if not self._turn.wait_for(its_turn, wait_s):
                raise RuntimeError("send: the batches before it were not confirmed in time")
            if self._broken is not None:
                raise PublishError(f"{self.connector}: not sent, {self._broken}")
            self._in_flight = batch
            batch.sent = True
        self._failures.clear()
        produce = self._producer.produce
        topic = self._topic
        now = str(int(time.time() * 1000)).encode()
        # One trace id per batch, extended by the record's place in it.
        trace = uuid.uuid4().hex[:20]
        rejections = batch.rejections
        for index, (record, verdict) in enumerate(zip(batch.records, batch.verdicts, strict=True)):
            if type(verdict) is tuple:
                value, key, region = verdict
                headers: Headers = [
                    (H_REGION, region),
                    (H_RECORD_ID, record.record_id),
                    (H_INGESTED_AT, now),
                    (H_TRACE, f"{trace}{index:06x}"),
                ]
                try:
                    produce(topic, value, key, headers=headers)
                except BufferError:
                    self._produce_when_room(topic, value, key, headers)
            else:
                rejection = rejections[index]
                base: Headers = [
                    (H_RECORD_ID, record.record_id),
                    (H_INGESTED_AT, now),
                    (H_TRACE, f"{trace}{index:06x}"),
                ]
                dlq_topic, body, dlq_headers = self._dead_letter(record, base, rejection)
                self._produce_when_room(dlq_topic, body, None, dlq_headers)

    def confirm(self, batch: Batch) -> None:
        """Wait for Kafka's acknowledgement of the whole batch, then checkpoint it.

        Raises :class:`PublishError` (checkpoint not advanced) when Kafka refused a record
        or did not confirm in time."""
        if self._in_flight is not batch:
            raise RuntimeError("confirm: the batch is not the one in flight")
        try:
            remaining = self._producer.flush(self._confirm_timeout_s)
            failures = list(self._failures)
            if remaining or failures:
                raise PublishError(
                    f"{self.connector}: {len(failures) + remaining} records not acknowledged "
                    f"({failures[:1] or 'timeout'}); checkpoint kept at the last good batch"
                )
            # Acknowledged by Kafka is durable; only a restart reads the checkpoint back.
            self._checkpoints.put(
                self.connector,
                {
                    "position": dict(batch.records[-1].position),
                    "updated_at_ms": int(time.time() * 1000),
                },
                timeout=self._confirm_timeout_s,
                read_back=False,
            )
        except BaseException as exc:
            self._break(f"an earlier batch failed: {exc}")
            raise
        with self._turn:
            self._in_flight = None
            self._next_turn = batch.turn + 1
            self._turn.notify_all()
        batch.confirmed = True
        self._count(batch)
        metrics.CONNECTOR_CHECKPOINT_AGE.labels(self.connector).set(0)
        metrics.CONNECTOR_BATCH_SECONDS.labels(self.connector).observe(
            time.perf_counter() - batch.started
        )

    # -- helpers -----------------------------------------------------------------------

    def _break(self, why: str) -> None:
        """Nothing more is sent: the batches waiting for their turn fail."""
        with self._turn:
            if self._broken is None:
                self._broken = why
            self._in_flight = None
            self._turn.notify_all()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(str(err))

    def _produce_when_room(
        self, topic: str, value: bytes, key: str | None, headers: Headers
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                self._producer.poll(0.1)

    def _count(self, batch: Batch) -> None:
        published = batch.published
        self.stats.published += published
        self._published_counter.inc(published)
        for rejection in batch.rejections.values():
            reason = rejection.reason
            self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
            metrics.CONNECTOR_RECORDS_REJECTED.labels(self.connector, reason).inc()

    def _dead_letter(
        self, record: SourceRecord, headers: Headers, rejection: Rejection
    ) -> tuple[str, bytes, Headers]:
        reason = rejection.reason
        log.warning(
            "record %s rejected (%s), kept in %s",
            record.record_id,
            reason,
            self._dlq,
            extra={"connector": self.connector, "record_id": record.record_id, "reason": reason},
        )
        if record.value is not None:
            body = orjson.dumps(
                {
                    "record": redact_personal(self._resource, record.value),
                    "position": dict(record.position),
                }
            )
        else:
            # Unparsable input cannot be redacted field by field: keep its position only.
            body = orjson.dumps(
                {"record": None, "position": dict(record.position), "bytes": len(record.raw)}
            )
        return (
            self._dlq,
            body,
            [
                *headers,
                (H_DLQ_REASON, reason.encode()),
                (H_DLQ_DETAIL, rejection.detail.encode()[:1000]),
                (H_DLQ_STAGE, b"connector"),
            ],
        )

    def close(self) -> None:
        if self._broken is not None:
            # A failed batch is published again from the checkpoint: what is still queued
            # need not wait for Kafka (if it gets through, it is the replay's duplicate).
            self._producer.purge()
            self._producer.flush(1)
            return
        self._producer.flush(30)
