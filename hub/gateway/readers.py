"""The gateway's Kafka side: group membership, the live tail and the catch-up scans.

Each runs in a thread of its own (librdkafka calls block) and hands work to the event
loop with :func:`call_on_loop`, waiting until the loop has taken it, which bounds memory.
The live tail reads and decodes its next batch while the loop fans out the one before:
it never has more than two batches handed over and not yet taken.

* :class:`Membership` joins the gateways' consumer group over the delivery topic only to
  learn which partitions this instance owns: it pauses every assigned partition and
  fetches nothing. Ownership decides redirects and which partitions are tailed always.
* :class:`LiveTail` is one assign-based consumer tailing the owned partitions, plus
  borrowed ones while streams of this instance need them (a subscriber served here
  although another instance owns its partition). Losing ownership therefore never
  interrupts a stream.
* :class:`CatchupScanner` reads old offsets for one partition's catch-up scans on a
  consumer of its own, so live traffic is never delayed by a catch-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from hub import kafka, metrics
from hub.config import HubConfig
from hub.delivery import RECORD_COUNT_HEADER
from hub.gateway.fanout import FanOut, ScanJob
from hub.gateway.session import DeliveryFrame
from hub.gateway.wire import frame_address

log = logging.getLogger(__name__)

T = TypeVar("T")


class LoopGone(Exception):
    """The event loop stopped while a reader waited for it."""


def submit_to_loop(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any
) -> concurrent.futures.Future[T]:
    """Run ``fn(*args)`` on ``loop`` (from a reader thread); its result arrives in the
    returned future. Calls submitted from one thread run in the order submitted."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:
        raise LoopGone("event loop closed") from None
    return future


def loop_result(
    loop: asyncio.AbstractEventLoop, stop: threading.Event, future: concurrent.futures.Future[T]
) -> T:
    """Wait for a call submitted with :func:`submit_to_loop`."""
    while True:
        try:
            return future.result(timeout=0.5)
        except concurrent.futures.TimeoutError:
            if stop.is_set() or loop.is_closed():
                future.cancel()
                raise LoopGone("event loop stopped") from None


def call_on_loop(
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
    fn: Callable[..., T],
    *args: Any,
) -> T:
    """Run ``fn(*args)`` on ``loop`` and wait for its result (from a reader thread)."""
    return loop_result(loop, stop, submit_to_loop(loop, fn, *args))


def to_frames(messages: Sequence[Any]) -> dict[int, list[DeliveryFrame]]:
    """Delivery-topic records as frames, by partition (records that are not frames are
    counted and skipped: the gateway never forwards what it cannot route)."""
    out: dict[int, list[DeliveryFrame]] = {}
    for msg in messages:
        if msg.error() is not None:
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("gateway consume error: %s", msg.error())
            continue
        value = msg.value() or b""
        address = frame_address(value, msg.key())
        partition = msg.partition()
        if address is None:
            metrics.GATEWAY_INVALID_FRAMES.inc()
            log.warning(
                "skipping record %d@%d of the delivery topic: not a frame for its key",
                partition,
                msg.offset(),
            )
            continue
        entries = 1
        for name, header in msg.headers() or ():
            if name == RECORD_COUNT_HEADER and header and header.isdigit():
                entries = int(header)
        frame = DeliveryFrame(
            partition,
            msg.offset(),
            address[0],
            address[1],
            entries,
            msg.timestamp()[1],
            value,
        )
        group = out.get(partition)
        if group is None:
            out[partition] = [frame]
        else:
            group.append(frame)
    return out


def _drain(consumer: Any, most: int, timeout: float) -> list[Any]:
    """Up to ``most`` messages, returning as soon as one arrived (``consume(n, t)`` alone
    waits for ``n`` or the whole timeout, which would delay a trickle of frames)."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, 0)] if most > 1 else [first]


class _Reader:
    name = "reader"

    def __init__(self, config: HubConfig, topic: str, loop: asyncio.AbstractEventLoop) -> None:
        self._config = config
        self._topic = topic
        self._loop = loop
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"gateway-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _main(self) -> None:
        try:
            self.run()
        except LoopGone:
            pass
        except BaseException as exc:
            self.error = exc
            log.exception("gateway %s stopped with an error", self.name)

    def run(self) -> None:
        raise NotImplementedError

    def _consumer(self, client_id: str, **overrides: Any) -> Any:
        cfg = self._config
        return kafka.consumer(
            cfg.kafka.bootstrap_servers,
            f"{cfg.gateway.group_id}-{client_id}-{uuid.uuid4().hex[:8]}",
            f"govhub-gateway-{client_id}",
            cfg.kafka.client_config,
            **overrides,
        )


class Membership(_Reader):
    """Group membership over the delivery topic, for ownership only (never fetches)."""

    name = "membership"

    def __init__(
        self,
        config: HubConfig,
        topic: str,
        loop: asyncio.AbstractEventLoop,
        on_owned: Callable[[frozenset[int]], None],
        heartbeat: Callable[[frozenset[int]], None],
    ) -> None:
        super().__init__(config, topic, loop)
        self._on_owned = on_owned
        self._heartbeat = heartbeat
        self.owned: frozenset[int] = frozenset()
        self.joined = threading.Event()

    def run(self) -> None:
        gw = self._config.gateway
        consumer = kafka.consumer(
            self._config.kafka.bootstrap_servers,
            gw.group_id,
            "govhub-gateway-membership",
            self._config.kafka.client_config,
            session_timeout_ms=gw.session_timeout_ms,
            heartbeat_interval_ms=max(1000, gw.session_timeout_ms // 5),
            partition_assignment_strategy="roundrobin",
        )

        def assigned(c: Any, partitions: list[TopicPartition]) -> None:
            c.assign(partitions)
            c.pause(partitions)
            self._set_owned(frozenset(p.partition for p in partitions))

        def revoked(c: Any, partitions: list[TopicPartition]) -> None:
            self._set_owned(frozenset())

        try:
            consumer.subscribe(
                [self._topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked
            )
            next_beat = 0.0
            while not self._stop.is_set():
                consumer.consume(100, 0.2)  # serves the group protocol; partitions are paused
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + gw.directory_heartbeat_s
                    try:
                        self._heartbeat(self.owned)
                    except Exception as exc:
                        log.warning("gateway directory heartbeat failed: %s", exc)
        finally:
            consumer.close()

    def _set_owned(self, owned: frozenset[int]) -> None:
        if owned != self.owned:
            log.info("gateway owns delivery partitions %s", sorted(owned))
        self.owned = owned
        if owned:
            self.joined.set()
        metrics.GATEWAY_OWNED_PARTITIONS.set(len(owned))
        try:
            self._loop.call_soon_threadsafe(self._on_owned, owned)
        except RuntimeError:
            return
        try:
            self._heartbeat(owned)
        except Exception as exc:
            log.warning("gateway directory update failed: %s", exc)


class LiveTail(_Reader):
    """Tails the partitions the fan-out wants, from their high watermark on."""

    name = "live"

    def __init__(
        self, config: HubConfig, topic: str, loop: asyncio.AbstractEventLoop, fanout: FanOut
    ) -> None:
        super().__init__(config, topic, loop)
        self._fanout = fanout
        self._wanted: frozenset[int] = frozenset()
        self.assigned: frozenset[int] = frozenset()

    def want(self, partitions: frozenset[int]) -> None:
        """The partitions to tail (called from the loop; applied by the reader thread)."""
        if partitions != self._wanted:
            self._wanted = partitions
            self._wake.set()

    def run(self) -> None:
        gw = self._config.gateway
        consumer = self._consumer(
            "tail",
            fetch_wait_max_ms=gw.live_fetch_wait_ms,
            queued_max_messages_kbytes=32_768,
            # When a large transaction commits, its frames fill the prefetch queue at once;
            # librdkafka then postpones the partition's next fetch (1 s by default), and
            # the fan-out, having drained the queue, sat idle for the rest.
            fetch_queue_backoff_ms=kafka.FETCH_QUEUE_BACKOFF_MS,
        )
        assigned: set[int] = set()
        positions: dict[int, int] = {}
        # The batch the loop is fanning out while this thread reads and decodes the next
        # (decoding holds the GIL, but the loop's socket writes do not): two batches at
        # most are handed over and not yet taken.
        handed: concurrent.futures.Future[None] | None = None
        try:
            while not self._stop.is_set():
                wanted = self._wanted
                if wanted != assigned:
                    if handed is not None:
                        loop_result(self._loop, self._stop, handed)
                        handed = None
                    self._reassign(consumer, assigned, wanted, positions)
                if not assigned:
                    self._wake.wait(0.2)
                    self._wake.clear()
                    continue
                messages = _drain(consumer, 1000, 0.1)
                frames = to_frames(messages) if messages else {}
                moved: dict[int, int] = {}
                for tp in consumer.position([TopicPartition(self._topic, p) for p in assigned]):
                    if tp.offset >= 0 and tp.offset != positions.get(tp.partition):
                        positions[tp.partition] = tp.offset
                        moved[tp.partition] = tp.offset
                if frames or moved:
                    metrics.GATEWAY_LIVE_READS.inc(sum(len(f) for f in frames.values()))
                    batch = submit_to_loop(self._loop, self._deliver, frames, moved)
                    if handed is not None:
                        loop_result(self._loop, self._stop, handed)
                    handed = batch
                elif handed is not None:
                    loop_result(self._loop, self._stop, handed)
                    handed = None
        finally:
            consumer.close()

    def _deliver(self, frames: dict[int, list[DeliveryFrame]], moved: dict[int, int]) -> None:
        for partition in frames.keys() | moved.keys():
            self._fanout.live_batch(partition, frames.get(partition, ()), moved.get(partition))

    def _reassign(
        self, consumer: Any, assigned: set[int], wanted: frozenset[int], positions: dict[int, int]
    ) -> None:
        gone = assigned - wanted
        if gone:
            consumer.incremental_unassign([TopicPartition(self._topic, p) for p in gone])
            for p in gone:
                assigned.discard(p)
                positions.pop(p, None)
                call_on_loop(self._loop, self._stop, self._fanout.tail_stopped, p)
        for p in sorted(wanted - assigned):
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self._topic, p), timeout=5, cached=False
                )
            except KafkaException as exc:
                log.warning("cannot read the end of delivery partition %d: %s", p, exc)
                continue
            consumer.incremental_assign([TopicPartition(self._topic, p, high)])
            assigned.add(p)
            positions[p] = high
            call_on_loop(self._loop, self._stop, self._fanout.tail_started, p, high, low)
        self.assigned = frozenset(assigned)
        metrics.GATEWAY_READ_PARTITIONS.set(len(assigned))


class CatchupScanner(_Reader):
    """Catch-up scans of one partition, one at a time, on a consumer of its own."""

    name = "catchup"

    def __init__(
        self,
        config: HubConfig,
        topic: str,
        loop: asyncio.AbstractEventLoop,
        fanout: FanOut,
        partition: int,
        may_retire: Callable[[int, CatchupScanner], bool],
        idle_close_s: float = 30.0,
    ) -> None:
        super().__init__(config, topic, loop)
        self.name = f"catchup-{partition}"
        self._fanout = fanout
        self._partition = partition
        self._may_retire = may_retire
        self._idle_close_s = idle_close_s
        self.scans = 0
        self.finished = threading.Event()

    def run(self) -> None:
        gw = self._config.gateway
        consumer = None
        job: ScanJob | None = None
        position = -1
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                if job is None:
                    job = call_on_loop(
                        self._loop, self._stop, self._fanout.scan_next, self._partition
                    )
                    if job is None:
                        if consumer is not None:
                            consumer.unassign()
                        if time.monotonic() - idle_since > self._idle_close_s and call_on_loop(
                            self._loop, self._stop, self._may_retire, self._partition, self
                        ):
                            return
                        self._wake.wait(0.5)
                        self._wake.clear()
                        continue
                    position = -1
                if consumer is None:
                    consumer = self._consumer(
                        f"catchup-{self._partition}",
                        queued_max_messages_kbytes=max(64, gw.catchup_fetch_bytes // 1024),
                        fetch_max_bytes=gw.catchup_fetch_bytes,
                        fetch_queue_backoff_ms=kafka.FETCH_QUEUE_BACKOFF_MS,
                    )
                low: int | None = None
                round_, start = job
                tp = TopicPartition(self._topic, self._partition)
                try:
                    if start != position:
                        low, _ = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                        consumer.assign(
                            [TopicPartition(self._topic, self._partition, max(start, low))]
                        )
                        position = max(start, low)
                        self.scans += 1
                    messages = _drain(consumer, gw.catchup_batch, 0.2)
                    now_at = consumer.position([tp])[0].offset
                except KafkaException as exc:
                    # The broker is slow or away: start this read again in a moment.
                    log.warning("catch-up read of partition %d failed: %s", self._partition, exc)
                    position = -1
                    self._stop.wait(0.5)
                    continue
                frames = to_frames(messages).get(self._partition, []) if messages else []
                if frames:
                    position = max(position, frames[-1].offset + 1)
                if now_at >= 0:
                    position = max(position, now_at)
                job = call_on_loop(
                    self._loop, self._stop, self._fanout.scan_batch, round_, frames, position, low
                )
                idle_since = time.monotonic()
        finally:
            self.finished.set()
            if consumer is not None:
                consumer.close()
