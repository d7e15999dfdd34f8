"""Publishing department records into the hub: validate, encode, produce, checkpoint.

Valid records go to ``govhub.src.<dept>.<resource>`` as Confluent-framed Avro with the
design's headers; rejected ones go to ``govhub.dlq.<dept>`` with the reason and personal
fields redacted. The checkpoint in ``_govhub.connect-offsets`` is written only after Kafka
acknowledged every record before it, so a crash re-reads, never skips.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message

from connectors.base import SourceRecord
from hub import kafka, metrics
from hub.catalogue.model import Resource
from hub.catalogue.quality import check_record, redact_personal
from hub.controlstate import CompactedTable
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec, RecordEncodeError
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


class PublishError(Exception):
    """Kafka refused records; the checkpoint was not advanced."""


@dataclass
class PublishStats:
    read: int = 0
    published: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


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
    ) -> None:
        """``regions``: the region codes records may carry (the party hierarchy); None
        checks only that codes are well formed."""
        self.connector = connector
        self._topics = topics
        self._resource = resource
        self._schema_id = schema_id
        self._codec = codec
        self._checkpoints = checkpoints
        self._topic = topics.source(resource.department, resource.code)
        self._dlq = topics.dlq(resource.department)
        # Delivery callbacks only for failures: a Python call per record costs more than
        # the produce itself.
        self._producer = kafka.producer(
            bootstrap_servers,
            f"govhub-connector-{connector}",
            client_config,
            delivery_report_only_error=True,
        )
        self.stats = PublishStats()
        self._regions = regions
        self._read_counter = metrics.CONNECTOR_RECORDS_READ.labels(connector)
        self._published_counter = metrics.CONNECTOR_RECORDS_PUBLISHED.labels(
            connector, resource.code
        )

    def checkpoint(self) -> Mapping[str, Any] | None:
        row = self._checkpoints.get(self.connector)
        return None if row is None else row.get("position")

    def publish(self, records: Sequence[SourceRecord]) -> None:
        """Publish one batch and advance the checkpoint once Kafka acked all of it."""
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        now = str(int(time.time() * 1000)).encode()
        trace = uuid.uuid4().hex[:20]
        self.stats.read += len(records)
        self._read_counter.inc(len(records))
        for index, record in enumerate(records):
            # One trace id per batch, extended by the record's place in it.
            topic, key, value, headers = self._encode(record, now, f"{trace}{index:06x}")
            while True:
                try:
                    self._producer.produce(
                        topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
        remaining = self._producer.flush(60)
        if remaining or failures:
            raise PublishError(
                f"{self.connector}: {len(failures) + remaining} records not acknowledged "
                f"({failures[:1] or 'timeout'}); checkpoint kept at the last good batch"
            )
        # Acknowledged by Kafka is durable; only a restart reads the checkpoint back.
        self._checkpoints.put(
            self.connector,
            {"position": dict(records[-1].position), "updated_at_ms": int(time.time() * 1000)},
            read_back=False,
        )
        metrics.CONNECTOR_CHECKPOINT_AGE.labels(self.connector).set(0)

    def _encode(
        self, record: SourceRecord, now_ms: bytes, trace: str
    ) -> tuple[str, bytes | None, bytes, Headers]:
        base_headers: Headers = [
            (H_RECORD_ID, record.record_id.encode()),
            (H_INGESTED_AT, now_ms),
            (H_TRACE, trace.encode()),
        ]
        if record.value is None:
            return self._reject(record, base_headers, "unparsable", record.error or "unparsable")
        violation = check_record(self._resource, record.value, self._regions)
        if violation is not None:
            return self._reject(record, base_headers, violation.reason, violation.detail)
        try:
            payload = self._codec.encode(self._codec.from_json(record.value))
        except RecordEncodeError as exc:
            return self._reject(record, base_headers, "schema-mismatch", str(exc))
        region = str(record.value[self._resource.region_field])
        key = str(record.value[self._resource.key_field]).encode()
        self.stats.published += 1
        self._published_counter.inc()
        return (
            self._topic,
            key,
            frame(self._schema_id, payload),
            [(H_REGION, region.encode()), *base_headers],
        )

    def _reject(
        self, record: SourceRecord, headers: Headers, reason: str, detail: str
    ) -> tuple[str, None, bytes, Headers]:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        metrics.CONNECTOR_RECORDS_REJECTED.labels(self.connector, reason).inc()
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
            None,
            body,
            [
                *headers,
                (H_DLQ_REASON, reason.encode()),
                (H_DLQ_DETAIL, detail.encode()[:1000]),
                (H_DLQ_STAGE, b"connector"),
            ],
        )

    def close(self) -> None:
        self._producer.flush(30)
