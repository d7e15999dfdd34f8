"""The router role: consume → route/mask/encrypt → produce, inside Kafka transactions.

Each consumed batch is one transaction holding the frames, the new key records, the dead
letters and the source offsets, so every source record reaches every entitled recipient
exactly once (readers use ``read_committed``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from hub import kafka, metrics
from hub.audit.events import control_event, new_event_id
from hub.catalogue.model import Resource
from hub.config import HubConfig
from hub.crypto.errors import CryptoError
from hub.crypto.frames import FrameSealer
from hub.crypto.keys import DataKeyRecord
from hub.crypto.kms import Kms
from hub.crypto.suites import PayloadSuite
from hub.parties.model import PartyKind
from hub.router.engine import AUDIT_FIELDS, TIER_NAMES, ExchangeEngine, Outcome, OutRecord
from hub.router.engine import Message as EngineMessage
from hub.router.keys import SUITES, KeyBook
from hub.router.routing import RoutingTable, compile_routing_table, earliest_change_ms
from hub.state import ControlState
from hub.subscriptions.pseudonyms import load_pseudonym_keys
from hub.watchdog import Watchdog

log = logging.getLogger(__name__)


class RouterService:
    def __init__(
        self,
        config: HubConfig,
        state: ControlState,
        kms: Kms,
        sealer_factory: Callable[[PayloadSuite, bytes], FrameSealer] = FrameSealer,
    ) -> None:
        self._config = config
        self._state = state
        self._topics = state.topics
        rc = config.router
        self._keybook = KeyBook(
            kms, rc.key_lifetime_s * 1000, SUITES[rc.suite], sealer_factory=sealer_factory
        )
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
        # Deleted data keys (crypto-shredding): a tombstone in _govhub.keys retires the
        # recipient's active key, so nothing more is sealed under a key that is gone.
        self._shredded: list[str] = []
        self._watchdog = Watchdog("router")
        state.keys.add_listener(self._on_key_record)
        self.batches_committed = 0
        self._revoked: set[tuple[str, int]] = set()
        self._in_flight: tuple[Outcome, list[Any], list[TopicPartition], list[Any]] | None = None
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def _on_key_record(self, key: str, value: Any) -> None:
        """Reader-thread callback of the keys table; acted on by the router thread."""
        if value is None and "/" in key and not key.startswith("_"):
            self._shredded.append(key)

    def _retire_shredded(self) -> None:
        while self._shredded:
            recipient, _, key_hex = self._shredded.pop().partition("/")
            if self._keybook.retire(recipient, key_hex):
                metrics.ROUTER_KEY_ROTATIONS.labels("key-deleted").inc()
                log.info(
                    "data key deleted; recipient gets a new key", extra={"recipient": recipient}
                )

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
        self._rotate_changed(tables)
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

    def _rotate_changed(self, tables: dict[str, RoutingTable]) -> None:
        """A recipient whose policy changed (a route added, removed, or its view, suite or
        subscription changed) gets a new data key with its next frame: a key never spans
        two policies, so releasing or shredding one epoch does not touch the other."""
        before = _policies(self._tables.values())
        after = _policies(tables.values())
        if not before:
            return  # first compilation: nothing sealed under an older policy
        changed = {r for r in before.keys() | after.keys() if before.get(r) != after.get(r)}
        retired = sum(self._keybook.rotate(recipient) for recipient in changed)
        if retired:
            metrics.ROUTER_KEY_ROTATIONS.labels("policy-change").inc(retired)
            log.info("data keys rotated on policy change", extra={"recipients": len(changed)})

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
        eos = cfg.router.exactly_once
        producer_extra: dict[str, Any] = (
            {"transactional_id": cfg.router.transactional_id} if eos else {}
        )
        producer = kafka.producer(
            cfg.kafka.bootstrap_servers,
            "govhub-router",
            cfg.kafka.client_config,
            linger_ms=2,
            batch_size=1_000_000,
            # Frames are ciphertext: compressing them only burns CPU.
            compression_type="none",
            **producer_extra,
        )
        committer = _Committer(producer, self._watchdog) if eos else None

        def settle() -> None:
            if committer is not None:
                self._settle(consumer, committer)
            else:
                self._settle_at_least_once(consumer, producer)

        def on_revoke(c: Any, partitions: list[TopicPartition]) -> None:
            # The batch in flight holds offsets of these partitions: let it finish before
            # they move to another router. What was gathered for the next batch is dropped
            # (see run): the partitions' new owner reads them from the last commit.
            self._revoked.update((tp.topic, tp.partition) for tp in partitions)
            settle()

        try:
            if eos:
                producer.init_transactions(30)
            else:
                log.warning(
                    "router runs at-least-once (router.exactly_once = false): "
                    "a crash may deliver frames twice"
                )
            consumer.subscribe([self._topics.source_pattern], on_revoke=on_revoke)
            self._ready.set()
            while not stop.is_set():
                started = time.perf_counter()
                self._revoked.clear()
                records = self._gather(consumer)
                if self._revoked:
                    # A rebalance during gathering: what was gathered may mix partitions
                    # now owned elsewhere with re-assigned ones. Read again from the last
                    # commit of what is owned now; nothing is lost or routed twice.
                    records = []
                    self._rewind(consumer)
                gathered = time.perf_counter()
                _stage("consume", gathered - started)
                # Policy is brought up to date after gathering: a grant written before a
                # record was published applies to it even when another process wrote it,
                # and a revocation takes effect with the next batch at the latest.
                if records and not (self._state.catch_up_policy() and self._state.keys.catch_up()):
                    log.warning("control state did not catch up; routing with what is loaded")
                self._refresh_policy()
                self._retire_shredded()
                _stage("policy", time.perf_counter() - gathered)
                if not records:
                    settle()
                    continue
                if committer is not None:
                    self._transact(consumer, producer, committer, records)
                else:
                    self._deliver_at_least_once(consumer, producer, records)
                self._record_lag(consumer)
            settle()
        finally:
            self._ready.clear()
            consumer.close()
            producer.flush(10)

    def _gather(self, consumer: Any) -> list[Message]:
        """One transaction's input: consume until the transaction interval has passed or
        ``max_transaction_records`` (or ``max_transaction_bytes``) arrived. A transaction's
        commit costs two broker round trips whatever its size, so a backlog is routed in
        large transactions while a trickle still commits within the interval."""
        rc = self._config.router
        started = time.monotonic()
        deadline = started + rc.transaction_interval_ms / 1000
        linger_until = started + rc.batch_linger_ms / 1000
        records: list[Message] = []
        size = 0
        while len(records) < rc.max_transaction_records and size < rc.max_transaction_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            want = min(rc.consume_batch, rc.max_transaction_records - len(records))
            # A short wait per call: a backlog fills every call at once, while under a
            # steady load a short answer means "caught up" and the batch commits now
            # instead of waiting for the interval (latency stays low below saturation).
            messages = consumer.consume(want, min(remaining, _CONSUME_WAIT_S))
            usable = [m for m in messages if m.error() is None]
            if len(usable) != len(messages):
                for m in messages:
                    self._usable(m)  # logs what is worth logging
            records += usable
            size += sum(len(m) for m in usable)
            if len(messages) < want and records and time.monotonic() >= linger_until:
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

    def _transact(
        self, consumer: Any, producer: Any, committer: _Committer, records: list[Message]
    ) -> None:
        """Shape ``records`` while the previous transaction commits, then write them as the
        next one: frames, key records, dead letters, the delivery audit and the source
        offsets, committed atomically in the background."""
        started = time.perf_counter()
        outcome = self._engine.process(cast(Sequence[EngineMessage], records))
        shaped = time.perf_counter()
        _stage("route", outcome.route_seconds)
        _stage("encrypt", shaped - started - outcome.route_seconds)
        if not self._settle(consumer, committer):
            # The previous transaction aborted and the consumer was rewound to the last
            # commit: this batch is read again, so what was shaped from it is dropped.
            return
        try:
            with self._watchdog.watch("begin_transaction", _TXN_CALL_S):
                producer.begin_transaction()
            key_records = self._keybook.take_new_records()
            for out in self._key_outputs(key_records):
                _produce(producer, out)
            for out in outcome.frames:
                _produce(producer, out)
            for out in outcome.dead_letters:
                _produce(producer, out)
            for out in self._audit_records(outcome):
                _produce(producer, out)
            with self._watchdog.watch("send_offsets_to_transaction", _TXN_CALL_S):
                producer.send_offsets_to_transaction(
                    _next_offsets(consumer), consumer.consumer_group_metadata(), _TXN_CALL_S
                )
        except KafkaException as exc:
            self._aborted(consumer, producer, exc)
            return
        _stage("produce", time.perf_counter() - shaped)
        committer.start(outcome, key_records)

    def _settle(self, consumer: Any, committer: _Committer) -> bool:
        """Wait for the transaction in flight; False if it failed (then it is aborted and
        the consumer rewound to the last committed offsets)."""
        done = committer.wait()
        if done is None:
            return True
        outcome, key_records, error, seconds = done
        if error is not None:
            self._aborted(consumer, committer.producer, error)
            return False
        self._committed(outcome, key_records, seconds)
        return True

    def _committed(self, outcome: Outcome, key_records: list[Any], seconds: float) -> None:
        """A batch is durably delivered: its keys are committed, its metrics counted."""
        _stage("commit", seconds)
        metrics.ROUTER_TXN_SECONDS.observe(seconds)
        for key_record in key_records:
            metrics.ROUTER_KEYS_CREATED.labels(key_record.suite.name).inc()
        self._keybook.commit()
        self.batches_committed += 1
        self._record_metrics(outcome)

    def _aborted(self, consumer: Any, producer: Any, exc: KafkaException) -> None:
        err = exc.args[0] if exc.args else None
        reason = err.name() if isinstance(err, KafkaError) else type(exc).__name__
        metrics.ROUTER_TXN_ABORTS.labels(reason).inc()
        self._keybook.abort()
        if isinstance(err, KafkaError) and err.fatal():
            log.error("router transaction fatal error: %s", exc)
            raise exc
        log.warning("router transaction aborted (%s); re-reading from the last commit", exc)
        try:
            with self._watchdog.watch("abort_transaction", _TXN_CALL_S):
                producer.abort_transaction(_TXN_CALL_S)
        except KafkaException:
            log.exception("abort_transaction failed")
        self._rewind(consumer)

    def _key_outputs(self, key_records: Sequence[DataKeyRecord]) -> list[OutRecord]:
        """New wrapped data keys for ``_govhub.keys`` and, in the same transaction, a
        control event per key in ``_govhub.audit`` (``key.create``: recipient, key id,
        suite, validity — never key material)."""
        router_id = self._config.router.transactional_id
        out = []
        for record in key_records:
            out.append(OutRecord(self._topics.keys, record.kafka_key(), record.to_json(), []))
            event = control_event(
                router_id,
                "key.create",
                target=record.kafka_key().decode(),
                recipient=record.recipient,
                detail={
                    "key_id": record.key_id.hex(),
                    "suite": record.suite.name,
                    "kek_id": record.kek_id,
                    "created_at_ms": record.created_at_ms,
                    "not_after_ms": record.not_after_ms,
                },
                at_ms=record.created_at_ms,
            )
            out.append(OutRecord(self._topics.audit, router_id.encode(), orjson.dumps(event), []))
        return out

    def _audit_records(self, outcome: Outcome) -> list[OutRecord]:
        """The delivery audit of one transaction, in chunks: per frame the recipient,
        subscription, resource, source partition and offsets, entry count, key id and the
        frame's authentication tag (which identifies its exact bytes)."""
        rows = outcome.audit
        if not rows:
            return []
        router_id = self._config.router.transactional_id
        values = audit_values(router_id, int(time.time() * 1000), rows)
        metrics.ROUTER_AUDIT_RECORDS.inc(len(values))
        return [OutRecord(self._topics.audit, router_id.encode(), v, []) for v in values]

    def _record_lag(self, consumer: Any) -> None:
        """Lag by source topic from the client's cached watermarks (no broker call)."""
        lag: dict[str, int] = {}
        for tp in _next_offsets(consumer):
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - tp.offset)
        for topic, value in lag.items():
            metrics.ROUTER_LAG.labels(topic).set(value)

    def _deliver_at_least_once(self, consumer: Any, producer: Any, records: list[Message]) -> None:
        """No transaction: shape this batch while the previous one's frames are still being
        acknowledged, then commit the previous batch's offsets once every frame of it was
        acknowledged and send this one. A failed produce rewinds to the committed offsets,
        so nothing is lost (a crash between a produce and its commit delivers those frames
        again)."""
        started = time.perf_counter()
        outcome = self._engine.process(cast(Sequence[EngineMessage], records))
        shaped = time.perf_counter()
        _stage("route", outcome.route_seconds)
        _stage("encrypt", shaped - started - outcome.route_seconds)
        if not self._settle_at_least_once(consumer, producer):
            return  # rewound: this batch is read again
        failures: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        key_records = self._keybook.take_new_records()
        for out in self._key_outputs(key_records):
            _produce(producer, out, on_delivery)
        for out in (*outcome.frames, *outcome.dead_letters, *self._audit_records(outcome)):
            _produce(producer, out, on_delivery)
        _stage("produce", time.perf_counter() - shaped)
        self._in_flight = (outcome, key_records, _next_offsets(consumer), failures)

    def _settle_at_least_once(self, consumer: Any, producer: Any) -> bool:
        """Wait for the acknowledgements of the batch in flight and commit its offsets;
        False if a frame failed (then the consumer is rewound to the last commit)."""
        if self._in_flight is None:
            return True
        outcome, key_records, offsets, failures = self._in_flight
        self._in_flight = None
        started = time.perf_counter()
        remaining = producer.flush(60)
        if failures or remaining:
            reason = failures[0].name() if failures else "FLUSH_TIMEOUT"
            metrics.ROUTER_TXN_ABORTS.labels(reason).inc()
            self._keybook.abort()
            log.warning("router delivery failed (%s); re-reading from the last commit", reason)
            self._rewind(consumer)
            return False
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The frames are out; their offsets will be committed by whoever reads the
            # records again (at-least-once: a duplicate, never a loss).
            log.warning("offset commit failed: %s", exc)
        seconds = time.perf_counter() - started
        self._committed(outcome, key_records, seconds)
        return True

    @staticmethod
    def _rewind(consumer: Any) -> None:
        """Seek back to the committed offsets so the aborted batch is processed again."""
        committed = consumer.committed(consumer.assignment(), timeout=10)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else 0
            try:
                consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            except KafkaException as exc:
                # Not fetching yet (just assigned): it starts from the commit anyway.
                log.debug("seek %s[%d] skipped: %s", tp.topic, tp.partition, exc)

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


_CONSUME_WAIT_S = 0.01
_AUDIT_CHUNK = 2000  # frames per audit record at most
_AUDIT_CHUNK_BYTES = 512 * 1024  # and bytes (the broker's default message limit is 1 MiB)


def audit_values(
    router_id: str, at_ms: int, rows: Sequence[Sequence[Any]], limit: int = _AUDIT_CHUNK_BYTES
) -> list[bytes]:
    """Delivery audit records (JSON) for ``rows`` (one per frame, columns
    :data:`AUDIT_FIELDS`): as few as fit, each under ``limit`` bytes and
    :data:`_AUDIT_CHUNK` frames whatever the frames hold (a row lists its frame's record
    ids) — unless one row alone is larger, which then goes alone."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 0

    def close() -> None:
        head = orjson.dumps(
            {
                "v": 2,
                "kind": "delivery",
                "id": new_event_id(),
                "router": router_id,
                "at_ms": at_ms,
                "fields": AUDIT_FIELDS,
            }
        )
        out.append(b"".join((head[:-1], b',"frames":[', b",".join(chunk), b"]}")))

    for row in rows:
        raw = orjson.dumps(row)
        if chunk and (size + len(raw) > limit or len(chunk) >= _AUDIT_CHUNK):
            close()
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw) + 1
    if chunk:
        close()
    return out


def _stage(stage: str, seconds: float) -> None:
    if seconds > 0:
        metrics.ROUTER_STAGE_SECONDS.labels(stage).inc(seconds)


def _policies(tables: Any) -> dict[str, frozenset[tuple[str, Any, str | None]]]:
    """Per recipient, what its routes are: subscription, view identity and suite."""
    out: dict[str, set[tuple[str, Any, str | None]]] = {}
    for table in tables:
        for route in table.routes:
            out.setdefault(route.recipient, set()).add(
                (route.subscription, route.view, route.suite)
            )
    return {r: frozenset(v) for r, v in out.items()}


# Transactional call timeouts (seconds). Short enough that a router cut off from its
# coordinator gives up (and, if librdkafka does not return, exits) within seconds.
_TXN_CALL_S = 10.0
_COMMIT_S = 20.0


class _Committer:
    """Commits one transaction at a time on a background thread, so the router shapes the
    next batch meanwhile (librdkafka releases the GIL while it waits for the broker)."""

    def __init__(self, producer: Any, watchdog: Watchdog) -> None:
        self.producer = producer
        self._watchdog = watchdog
        self._thread: threading.Thread | None = None
        self._result: tuple[Outcome, list[Any], KafkaException | None, float] | None = None

    def start(self, outcome: Outcome, key_records: list[Any]) -> None:
        assert self._thread is None, "one transaction in flight at a time"

        def commit() -> None:
            started = time.perf_counter()
            error: KafkaException | None = None
            try:
                with self._watchdog.watch("commit_transaction", _COMMIT_S):
                    self.producer.commit_transaction(_COMMIT_S)
            except KafkaException as exc:
                error = exc
            self._result = (outcome, key_records, error, time.perf_counter() - started)

        self._thread = threading.Thread(target=commit, name="govhub-router-commit", daemon=True)
        self._thread.start()

    def wait(self) -> tuple[Outcome, list[Any], KafkaException | None, float] | None:
        """The finished transaction's outcome, key records, error and commit time; None if
        none was in flight."""
        if self._thread is None:
            return None
        self._thread.join()
        self._thread = None
        result, self._result = self._result, None
        assert result is not None
        return result


def _next_offsets(consumer: Any) -> list[TopicPartition]:
    """The offsets to commit for what was consumed so far: the consumer's position on each
    assigned partition (one past the last record handed out). Nothing is consumed between
    a batch's gathering and its commit, so this is exactly the batch's end."""
    return [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]


def _produce(producer: Any, out: OutRecord, on_delivery: Any = None) -> None:
    extra = {} if on_delivery is None else {"on_delivery": on_delivery}
    while True:
        try:
            producer.produce(
                out.topic,
                value=out.value,
                key=out.key,
                headers=out.headers,
                partition=out.partition,
                **extra,
            )
            return
        except BufferError:
            producer.poll(0.05)
