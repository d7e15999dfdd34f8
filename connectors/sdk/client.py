"""The subscriber client: read own frames, fetch keys, decrypt, verify, write to a sink.

It reads the recipient's delivery partition directly from Kafka (design §8: departments
with Kafka access use the same frames and SDK as gateway subscribers), resumes from the
cursor its sink stored, and hands records to the sink together with the next cursor, so
the sink holds each record exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from connectors.base import Backpressure
from connectors.sdk.errors import KeyFetchError, WrongKey
from connectors.sdk.frames import FrameOpener
from connectors.sdk.hubclient import HubClient
from connectors.sinks.base import Cursor, DeliveredRecord, Sink
from hub import kafka, metrics
from hub.crypto.frames import FrameSequenceChecker
from hub.crypto.keyrelease import KemSuite
from hub.delivery import delivery_partition
from hub.topics import Topics

log = logging.getLogger(__name__)

# Key release failing for a reason that passes (the api restarting): the batch is read
# again after these pauses (doubling up to the max).
KEY_RETRY_FIRST_S = 0.5
KEY_RETRY_MAX_S = 10.0


@dataclass(frozen=True)
class SubscriberSettings:
    bootstrap_servers: str
    recipient: str
    api_url: str
    token: str
    private_key: bytes
    kem: KemSuite = KemSuite.X25519
    topic_prefix: str = ""
    client_config: Mapping[str, str] | None = None


class SubscriberClient:
    def __init__(self, settings: SubscriberSettings, sink: Sink) -> None:
        self._s = settings
        self._sink = sink
        self._hub = HubClient(settings.api_url, settings.token)
        self._opener = FrameOpener(
            settings.recipient, self._hub, settings.private_key, settings.kem
        )
        self._topic = Topics(settings.topic_prefix).delivery
        self.records = 0
        self.backpressure_waits = 0
        self.recent_latencies_ms: deque[float] = deque(maxlen=2000)

    def run(self, stop: threading.Event, idle_timeout: float | None = None) -> None:
        """Consume until ``stop`` is set (or nothing arrived for ``idle_timeout`` seconds)."""
        consumer = kafka.consumer(
            self._s.bootstrap_servers,
            f"govhub-subscriber-{uuid.uuid4().hex}",
            f"govhub-sdk-{self._s.recipient}",
            self._s.client_config,
        )
        try:
            metadata = consumer.list_topics(self._topic, timeout=10)
            partitions = len(metadata.topics[self._topic].partitions)
            partition = delivery_partition(self._s.recipient, partitions)
            cursor = self._sink.load_cursor()
            if cursor is not None and cursor.partition != partition:
                raise RuntimeError(
                    f"stored cursor is for partition {cursor.partition}, "
                    f"but {self._s.recipient} is now in partition {partition}"
                )
            start = cursor.next_offset if cursor else OFFSET_BEGINNING
            sequence = (
                FrameSequenceChecker.from_dict(cursor.sequence)
                if cursor
                else FrameSequenceChecker()
            )
            consumer.assign([TopicPartition(self._topic, partition, start)])
            recipient_key = self._s.recipient.encode()
            last_activity = time.monotonic()
            backoff = KEY_RETRY_FIRST_S
            while not stop.is_set():
                messages = consumer.consume(500, 0.2)
                batch: list[DeliveredRecord] = []
                next_offset = None
                try:
                    for msg in messages:
                        err = msg.error()
                        if err is not None:
                            if err.code() != KafkaError._PARTITION_EOF:
                                log.warning("subscriber consume error: %s", err)
                            continue
                        next_offset = (msg.offset() or 0) + 1
                        if msg.key() != recipient_key:
                            continue
                        batch.extend(self._open(msg.value() or b"", sequence))
                except KeyFetchError as exc:
                    if isinstance(exc, WrongKey):
                        raise
                    # The api is away (restarting) or not caught up: nothing of this batch
                    # is written; read it again from the sink's cursor after a pause.
                    log.warning("key release failed (%s); retrying in %.1f s", exc, backoff)
                    if stop.wait(backoff):
                        return
                    backoff = min(backoff * 2, KEY_RETRY_MAX_S)
                    cursor = self._sink.load_cursor()
                    sequence = (
                        FrameSequenceChecker.from_dict(cursor.sequence)
                        if cursor
                        else FrameSequenceChecker()
                    )
                    consumer.seek(
                        TopicPartition(
                            self._topic, partition, cursor.next_offset if cursor else start
                        )
                    )
                    continue
                backoff = KEY_RETRY_FIRST_S
                if next_offset is None:
                    if idle_timeout is not None and time.monotonic() - last_activity > idle_timeout:
                        return
                    continue
                last_activity = time.monotonic()
                if not self._write(batch, Cursor(partition, next_offset, sequence.to_dict()), stop):
                    return
                now = time.time()
                for record in batch:
                    latency = max(0.0, now - record.ingested_at_ms / 1000)
                    metrics.SDK_E2E_LATENCY.observe(latency)
                    self.recent_latencies_ms.append(latency * 1000)
                metrics.SDK_RECORDS.inc(len(batch))
                self.records += len(batch)
        finally:
            consumer.close()

    def _write(self, batch: list[DeliveredRecord], cursor: Cursor, stop: threading.Event) -> bool:
        """Hand the batch to the sink; on ``Backpressure`` wait and offer the same batch again.

        False when ``stop`` was set while waiting: the batch is not stored, and the next run
        starts again from the cursor the sink holds.
        """
        while True:
            try:
                self._sink.write(batch, cursor)
                return True
            except Backpressure as exc:
                self.backpressure_waits += 1
                log.warning(
                    "sink busy (%s); retrying %d records in %.1f s",
                    exc.reason,
                    len(batch),
                    exc.retry_after,
                )
                if stop.wait(max(0.0, exc.retry_after)):
                    return False

    def _open(self, frame: bytes, sequence: FrameSequenceChecker) -> list[DeliveredRecord]:
        return self._opener.open(frame, sequence)

    @property
    def frames(self) -> int:
        return self._opener.frames

    @property
    def replays_skipped(self) -> int:
        return self._opener.replays_skipped
