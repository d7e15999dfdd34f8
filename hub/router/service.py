"""The router role: consume → route/mask/encrypt → produce, inside Kafka transactions.

Each consumed batch is one transaction holding the frames, the new key records, the dead
letters and the source offsets, so every source record reaches every entitled recipient
exactly once (readers use ``read_committed``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, Message, TopicPartition

from hub import kafka, metrics
from hub.catalogue.model import Resource
from hub.config import HubConfig
from hub.crypto.errors import CryptoError
from hub.crypto.kms import Kms
from hub.parties.model import PartyKind
from hub.router.engine import TIER_NAMES, ExchangeEngine, Outcome, OutRecord
from hub.router.engine import Message as EngineMessage
from hub.router.keys import SUITES, KeyBook
from hub.router.routing import RoutingTable, compile_routing_table, earliest_change_ms
from hub.state import ControlState
from hub.subscriptions.pseudonyms import load_pseudonym_keys

log = logging.getLogger(__name__)


class RouterService:
    def __init__(self, config: HubConfig, state: ControlState, kms: Kms) -> None:
        self._config = config
        self._state = state
        self._topics = state.topics
        rc = config.router
        self._keybook = KeyBook(kms, rc.key_lifetime_s * 1000, SUITES[rc.suite])
        self._tables: dict[str, RoutingTable] = {}
        self._tiers: dict[str, str] = {}
        self._generation = -1
        self._valid_until_ms: int | None = None
        self._kms = kms
        self._engine = ExchangeEngine(
            self._topics,
            state.registry,
            self._tables.get,
            self._tier,
            self._keybook,
            config.kafka.delivery_partitions,
            rc.max_frame_entries,
            rc.max_frame_bytes,
        )
        self.batches_committed = 0
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    # -- policy ----------------------------------------------------------------------------
    def _tier(self, recipient: str) -> str:
        return self._tiers.get(recipient, "unknown")

    def _refresh_policy(self) -> None:
        generation = self._state.generation
        now = int(time.time() * 1000)
        expired = self._valid_until_ms is not None and now >= self._valid_until_ms
        if generation == self._generation and not expired:
            return
        self._generation = generation
        parties = self._state.party_map()
        subscriptions = self._state.subscription_list()
        tables: dict[str, RoutingTable] = {}
        resources: dict[str, Resource] = self._state.resources()
        try:
            pseudonyms = load_pseudonym_keys(self._state.keys, self._kms)
        except CryptoError as exc:
            # Without the key, pseudonym fields are redacted, never sent in clear.
            log.error("pseudonym key unavailable: %s", exc)
            pseudonyms = None
        for code, resource in resources.items():
            tables[code] = compile_routing_table(resource, subscriptions, parties, now, pseudonyms)
            metrics.ROUTER_ROUTING_TABLES.labels(code).set(len(tables[code].routes))
        self._valid_until_ms = earliest_change_ms(tables.values())
        self._tables.clear()
        self._tables.update(tables)
        self._tiers = {
            p.id: ("department" if p.kind is PartyKind.DEPARTMENT else TIER_NAMES[p.level])
            for p in parties.values()
        }
        self._engine.invalidate()
        log.info(
            "routing tables compiled",
            extra={"generation": generation, "routes": sum(len(t.routes) for t in tables.values())},
        )

    # -- main loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        cfg = self._config
        consumer = kafka.consumer(
            cfg.kafka.bootstrap_servers,
            cfg.router.group_id,
            "govhub-router",
            cfg.kafka.client_config,
            topic_metadata_refresh_interval_ms=1000,
            session_timeout_ms=cfg.router.session_timeout_ms,
        )
        producer = kafka.producer(
            cfg.kafka.bootstrap_servers,
            "govhub-router",
            cfg.kafka.client_config,
            transactional_id=cfg.router.transactional_id,
            linger_ms=2,
            batch_size=1_000_000,
            # Frames are ciphertext: compressing them only burns CPU.
            compression_type="none",
        )
        try:
            producer.init_transactions(30)
            consumer.subscribe([self._topics.source_pattern])
            self._ready.set()
            while not stop.is_set():
                records = self._gather(consumer)
                # Policy is brought up to date after gathering: a grant written before a
                # record was published applies to it even when another process wrote it,
                # and a revocation takes effect with the next batch at the latest.
                if records and not self._state.catch_up_policy():
                    log.warning("control state did not catch up; routing with what is loaded")
                self._refresh_policy()
                if records:
                    self._transact(consumer, producer, records)
        finally:
            self._ready.clear()
            consumer.close()
            producer.flush(10)

    def _gather(self, consumer: Any) -> list[Message]:
        """One transaction's input: consume until the transaction interval has passed or
        ``max_transaction_records`` arrived. A transaction's commit costs two broker round
        trips whatever its size, so a backlog is routed in large transactions while a
        trickle still commits within the interval."""
        rc = self._config.router
        deadline = time.monotonic() + rc.transaction_interval_ms / 1000
        records: list[Message] = []
        while len(records) < rc.max_transaction_records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            want = min(rc.consume_batch, rc.max_transaction_records - len(records))
            messages = consumer.consume(want, remaining)
            records.extend(m for m in messages if self._usable(m))
            if len(messages) < want and records:
                break  # caught up with the log: commit what there is now
        return records

    @staticmethod
    def _usable(msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            log.debug("no source topic matches yet: %s", err)
        elif err.code() != KafkaError._PARTITION_EOF:
            log.warning("router consume error: %s", err)
        return False

    def _transact(self, consumer: Any, producer: Any, records: list[Message]) -> None:
        outcome = self._engine.process(cast(Sequence[EngineMessage], records))
        try:
            producer.begin_transaction()
            for key_record in self._keybook.take_new_records():
                _produce(
                    producer,
                    OutRecord(self._topics.keys, key_record.kafka_key(), key_record.to_json(), []),
                )
                metrics.ROUTER_KEYS_CREATED.labels(key_record.suite.name).inc()
            for out in outcome.frames:
                _produce(producer, out)
            for out in outcome.dead_letters:
                _produce(producer, out)
            positions = [
                tp for tp in consumer.position(consumer.assignment()) if tp.offset != OFFSET_INVALID
            ]
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
            started = time.perf_counter()
            producer.commit_transaction(60)
            metrics.ROUTER_TXN_SECONDS.observe(time.perf_counter() - started)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            reason = err.name() if isinstance(err, KafkaError) else type(exc).__name__
            metrics.ROUTER_TXN_ABORTS.labels(reason).inc()
            self._keybook.abort()
            if isinstance(err, KafkaError) and err.fatal():
                log.error("router transaction fatal error: %s", exc)
                raise
            log.warning("router transaction aborted (%s); re-reading the batch", exc)
            try:
                producer.abort_transaction(30)
            except KafkaException:
                log.exception("abort_transaction failed")
            self._rewind(consumer)
            return
        self._keybook.commit()
        self.batches_committed += 1
        self._record_metrics(outcome)

    @staticmethod
    def _rewind(consumer: Any) -> None:
        """Seek back to the committed offsets so the aborted batch is processed again."""
        committed = consumer.committed(consumer.assignment(), timeout=10)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else 0
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    @staticmethod
    def _record_metrics(outcome: Outcome) -> None:
        now_ms = time.time() * 1000
        for resource, stats in outcome.stats.items():
            metrics.ROUTER_RECORDS_IN.labels(resource).inc(stats.records_in)
            if stats.unrouted:
                metrics.ROUTER_UNROUTED.labels(resource).inc(stats.unrouted)
            for tier, count in stats.deliveries.items():
                metrics.ROUTER_DELIVERIES.labels(resource, tier).inc(count)
            for tier, count in stats.frames.items():
                metrics.ROUTER_FRAMES.labels(resource, tier).inc(count)
            for tier, size in stats.frame_bytes.items():
                metrics.ROUTER_FRAME_BYTES.labels(resource, tier).inc(size)
            if stats.oldest_ingest_ms:
                metrics.ROUTER_ROUTE_LATENCY.labels(resource).observe(
                    max(0.0, (now_ms - stats.oldest_ingest_ms) / 1000)
                )
        for reason, count in outcome.dead_reasons.items():
            metrics.ROUTER_DEAD_LETTERS.labels(reason).inc(count)


def _produce(producer: Any, out: OutRecord) -> None:
    while True:
        try:
            producer.produce(
                out.topic,
                value=out.value,
                key=out.key,
                headers=out.headers,
                partition=out.partition,
            )
            return
        except BufferError:
            producer.poll(0.05)
