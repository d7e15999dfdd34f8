"""The audit notary (``govhub serve --roles audit``): the single writer of the hash chain.

Routers and api replicas write audit events to ``_govhub.audit`` in their own transactions,
so no writer can know its event's predecessor. The notary reads each audit partition in
offset order (``read_committed``: aborted router transactions never enter the chain) and
appends one link per event to the same partition of ``_govhub.audit-chain``, plus a
checkpoint signed with the hub's Ed25519 key every ``checkpoint_every`` links or
``checkpoint_interval_s`` seconds. Links, checkpoints and the consumed offsets commit in one
Kafka transaction, so the chain is exactly once: after a crash (even ``kill -9``) the next
notary resumes from the committed offsets and the chain heads it reads back. A second
notary with the same transactional id fences the first, so there is never more than one
writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from hub import kafka, metrics
from hub.audit.chain import (
    ChainFormatError,
    ChainHead,
    Checkpoint,
    Link,
    parse_chain_record,
    sign_checkpoint,
)
from hub.audit.digest import HashAlg
from hub.audit.signing import key_id
from hub.audit.store import event_id_of
from hub.topics import Topics
from hub.watchdog import Watchdog

log = logging.getLogger(__name__)


class NotaryConfig(BaseModel):
    """The notary's settings (defaults suit a site; tests shorten the intervals)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transactional_id: str = Field(default="govhub-audit-notary", min_length=1)
    group_id: str = Field(default="govhub-audit-notary", min_length=1)
    alg: HashAlg = Field(default="sha256", description="sha256, or sm3 for the 国密 suite")
    checkpoint_every: int = Field(default=1000, ge=1, description="links per checkpoint")
    checkpoint_interval_s: float = Field(
        default=10.0, gt=0, description="a new head is signed at least this often"
    )
    batch: int = Field(default=1000, ge=1, le=100_000)


class Notary:
    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        signing_key: Ed25519PrivateKey,
        config: NotaryConfig | None = None,
        client_config: Mapping[str, str] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._key = signing_key
        self._key_id = key_id(signing_key.public_key())
        self.config = config or NotaryConfig()
        self._watchdog = Watchdog("audit notary")
        self._client_config = dict(client_config or {})
        self._heads: dict[int, ChainHead] = {}
        self._last_checkpoint: dict[int, float] = {}
        self._ready = threading.Event()
        self.links_written = 0
        self.checkpoints_written = 0

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stop: threading.Event) -> None:
        cfg = self.config
        consumer = kafka.consumer(
            self._bootstrap, cfg.group_id, "govhub-audit-notary", self._client_config
        )
        producer = kafka.producer(
            self._bootstrap,
            "govhub-audit-notary",
            self._client_config,
            transactional_id=cfg.transactional_id,
        )
        try:
            producer.init_transactions(30)
            partitions = self._partitions(consumer)
            self._resume(consumer, partitions)
            self._ready.set()
            log.info("audit notary started", extra={"partitions": partitions})
            while not stop.is_set():
                batch = [m for m in consumer.consume(cfg.batch, 0.2) if self._usable(m)]
                due = self._due_checkpoints(batch)
                if not batch and not due:
                    continue
                try:
                    self._transact(consumer, producer, batch, due)
                except KafkaException as exc:
                    self._aborted(consumer, producer, partitions, exc)
        finally:
            consumer.close()
            producer.flush(5)

    # -- start and resume ---------------------------------------------------------------------
    def _partitions(self, consumer: Any) -> list[int]:
        audit, chain = self._topics.audit, self._topics.audit_chain
        meta = consumer.list_topics(timeout=10).topics
        if audit not in meta or chain not in meta:
            raise RuntimeError(f"topics {audit} and {chain} must exist (hub topics not created)")
        ours, theirs = len(meta[audit].partitions), len(meta[chain].partitions)
        if theirs < ours:
            raise RuntimeError(
                f"{chain} has {theirs} partitions, fewer than {audit} ({ours}): "
                "each audit partition needs its own chain partition"
            )
        return list(range(ours))

    def _resume(self, consumer: Any, partitions: list[int]) -> None:
        """Chain heads from the chain topic; consumer positions from the committed offsets
        (both written in the same transactions, so they agree)."""
        audit = self._topics.audit
        committed = consumer.committed([TopicPartition(audit, p) for p in partitions], 30)
        assignment = []
        for tp in committed:
            last_link, last_cp = self._read_head(tp.partition)
            self._heads[tp.partition] = ChainHead(tp.partition, self.config.alg, last_link)
            self._last_checkpoint[tp.partition] = time.monotonic()
            if last_link is not None and (last_cp is None or last_cp.seq < last_link.seq):
                self._heads[tp.partition].since_checkpoint = last_link.seq - (
                    last_cp.seq if last_cp else -1
                )
            start = tp.offset if tp.offset >= 0 else 0
            if last_link is not None and start <= last_link.offset:
                start = last_link.offset + 1  # never chain an event twice
            assignment.append(TopicPartition(audit, tp.partition, start))
        consumer.assign(assignment)

    def _read_head(self, partition: int) -> tuple[Link | None, Checkpoint | None]:
        """The last link and checkpoint of one chain partition (reading back from the end
        in growing windows)."""
        chain = self._topics.audit_chain
        reader = kafka.consumer(
            self._bootstrap,
            f"{self.config.group_id}-head",
            "govhub-audit-notary-head",
            self._client_config,
            enable_partition_eof=True,
        )
        try:
            low, high = reader.get_watermark_offsets(TopicPartition(chain, partition), timeout=10)
            window = 256
            while high > low:
                start = max(low, high - window)
                last_link: Link | None = None
                last_cp: Checkpoint | None = None
                reader.assign([TopicPartition(chain, partition, start)])
                while True:
                    msgs = reader.consume(1000, 0.2)
                    eof = False
                    for msg in msgs:
                        err = msg.error()
                        if err is not None:
                            if err.code() == KafkaError._PARTITION_EOF:
                                eof = True
                                break
                            raise RuntimeError(f"reading {chain}: {err}")
                        try:
                            record = parse_chain_record(orjson.loads(msg.value() or b""))
                        except (ChainFormatError, orjson.JSONDecodeError) as exc:
                            raise RuntimeError(
                                f"{chain}[{partition}]@{msg.offset()} is not a chain record: "
                                f"{exc}; run govhub audit verify"
                            ) from None
                        if isinstance(record, Link):
                            last_link = record
                        else:
                            last_cp = record
                    if eof:
                        break
                reader.unassign()
                if last_link is not None or start == low:
                    return last_link, last_cp
                window *= 4
            return None, None
        finally:
            reader.close()

    # -- the loop ------------------------------------------------------------------------------
    @staticmethod
    def _usable(msg: Any) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("audit notary consume error: %s", err)
        return False

    def _due_checkpoints(self, batch: list[Any]) -> set[int]:
        """Partitions whose head should be signed in the next transaction."""
        now = time.monotonic()
        due = set()
        for partition, head in self._heads.items():
            pending = head.since_checkpoint + sum(1 for m in batch if m.partition() == partition)
            if pending == 0:
                continue
            elapsed = now - self._last_checkpoint[partition]
            if pending >= self.config.checkpoint_every or (
                elapsed >= self.config.checkpoint_interval_s
            ):
                due.add(partition)
        return due

    def _transact(self, consumer: Any, producer: Any, batch: list[Any], due: set[int]) -> None:
        chain = self._topics.audit_chain
        started = time.perf_counter()
        with self._watchdog.watch("begin_transaction", 30):
            producer.begin_transaction()
        links = 0
        for msg in batch:
            partition = msg.partition()
            head = self._heads[partition]
            value = msg.value() or b""
            link = head.append(msg.offset(), event_id_of(value), value)
            producer.produce(chain, orjson.dumps(link.to_json()), None, partition)
            links += 1
            if head.since_checkpoint >= self.config.checkpoint_every:
                self._checkpoint(producer, head)
                due.discard(partition)
            if len(producer) > 50_000:
                producer.poll(0)
        for partition in sorted(due):
            self._checkpoint(producer, self._heads[partition])
        if batch:
            with self._watchdog.watch("send_offsets_to_transaction", 30):
                producer.send_offsets_to_transaction(
                    [
                        TopicPartition(self._topics.audit, p, h.last.offset + 1)
                        for p, h in self._heads.items()
                        if h.last is not None
                    ],
                    consumer.consumer_group_metadata(),
                    30,
                )
        with self._watchdog.watch("commit_transaction", 30):
            producer.commit_transaction(30)
        self.links_written += links
        metrics.AUDIT_LINKS.inc(links)
        metrics.AUDIT_NOTARY_TXN_SECONDS.observe(time.perf_counter() - started)

    def _checkpoint(self, producer: Any, head: ChainHead) -> None:
        assert head.last is not None
        cp = sign_checkpoint(self._key, self._key_id, head.last, int(time.time() * 1000))
        producer.produce(self._topics.audit_chain, orjson.dumps(cp.to_json()), None, head.partition)
        head.since_checkpoint = 0
        self._last_checkpoint[head.partition] = time.monotonic()
        self.checkpoints_written += 1
        metrics.AUDIT_CHECKPOINTS.inc()

    def _aborted(
        self, consumer: Any, producer: Any, partitions: list[int], exc: KafkaException
    ) -> None:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.fatal():
            log.error("audit notary fenced or fatal error: %s", exc)
            raise exc
        log.warning("audit notary transaction aborted (%s); resuming from the last commit", exc)
        try:
            with self._watchdog.watch("abort_transaction", 30):
                producer.abort_transaction(30)
        except KafkaException:
            log.exception("abort_transaction failed")
        consumer.unassign()
        self._resume(consumer, partitions)
