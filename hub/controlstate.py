"""Control state materialised from compacted topics (design §4).

Every role keeps a :class:`CompactedTable` per control topic: it reads the topic from the
beginning at start, then keeps consuming, so a change written by any instance reaches all
of them within a second. Writes produce to the topic and return once this table has read
its own write back, so a caller never acts on state it cannot yet see.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from hub import kafka

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any] | None], None]


class ControlStateError(Exception):
    """Control state could not be loaded or written."""


class CompactedTable:
    """A key → JSON-document map kept in a single-partition compacted topic."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_config: Mapping[str, str] | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._client_config = dict(client_config or {})
        self._poll_interval = poll_interval
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Condition()
        self._position = -1  # next offset to read; -1 until assigned
        self._end_at_start: int | None = None
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._listeners: list[Listener] = []
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self._watermarks: Any = None
        self._error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"table:{self.topic}", daemon=True)
        self._thread.start()
        if not self._loaded.wait(timeout):
            self.stop()
            raise ControlStateError(
                f"control topic {self.topic} not loaded within {timeout:.0f}s "
                f"({self._error or 'broker unreachable or topic missing'})"
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
        if self._watermarks is not None:
            self._watermarks.close()
            self._watermarks = None

    def __enter__(self) -> CompactedTable:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    # -- reads -----------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._rows.get(key)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._rows.items())

    def values(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self.items_keys())

    def items_keys(self) -> list[str]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(key, value_or_None)`` from the reader thread on every change."""
        self._listeners.append(listener)

    def wait_for(self, predicate: Callable[[CompactedTable], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))
        return True

    def catch_up(self, timeout: float = 5.0) -> bool:
        """Wait until this table has read everything written to its topic before the call
        (read-your-writes across processes); False on timeout."""
        if self._watermarks is None:
            self._watermarks = kafka.consumer(
                self._bootstrap,
                f"govhub-watermarks-{uuid.uuid4().hex}",
                f"govhub-watermarks-{self.topic}",
                self._client_config,
            )
        try:
            _, high = self._watermarks.get_watermark_offsets(
                TopicPartition(self.topic, 0), timeout=timeout, cached=False
            )
        except KafkaException as exc:
            # The broker is away or its leader moved (a restart): not caught up this time;
            # the caller goes on with what is loaded and asks again.
            log.warning("control table %s: end offset unavailable: %s", self.topic, exc)
            return False
        return self.wait_for(lambda t: t._position >= high, timeout)

    # -- writes ----------------------------------------------------------------------------
    def put(
        self,
        key: str,
        value: Mapping[str, Any] | None,
        timeout: float = 10.0,
        read_back: bool = True,
    ) -> None:
        """Write ``value`` (``None`` deletes); return once Kafka acknowledged it and, with
        ``read_back``, once this table has read it back (so a caller sees its own write)."""
        self.put_many([(key, value)], timeout, read_back)

    def put_many(
        self,
        items: Iterable[tuple[str, Mapping[str, Any] | None]],
        timeout: float = 30.0,
        read_back: bool = True,
    ) -> None:
        """Write several rows with one flush (bulk provisioning); same guarantees as
        :meth:`put` for every row: all acknowledged, and read back when asked."""
        if self._producer is None:
            self._producer = kafka.producer(
                self._bootstrap, f"govhub-control-{uuid.uuid4().hex[:8]}", self._client_config
            )
        errors: list[KafkaError] = []
        offsets: list[int] = []

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                offsets.append(msg.offset())

        sent = 0
        for key, value in items:
            payload = None if value is None else orjson.dumps(dict(value))
            while True:
                try:
                    self._producer.produce(
                        self.topic, key=key.encode(), value=payload, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
            sent += 1
        self._producer.flush(timeout)
        if errors:
            raise ControlStateError(f"write to {self.topic} failed: {errors[0]}")
        if len(offsets) < sent:
            raise ControlStateError(f"write to {self.topic} not acknowledged within {timeout}s")
        if not offsets:
            return
        last = max(offsets)
        if read_back and not self.wait_for(lambda t: t._position > last, timeout):
            raise ControlStateError(f"write to {self.topic} not read back within {timeout}s")

    # -- reader thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._consume()
        except BaseException as exc:  # reported through start() and logs, never silent
            self._error = exc
            log.exception("control table %s reader stopped", self.topic)

    def _consume(self) -> None:
        consumer = kafka.consumer(
            self._bootstrap,
            f"govhub-table-{uuid.uuid4().hex}",
            f"govhub-table-{self.topic}",
            self._client_config,
        )
        try:
            tp = TopicPartition(self.topic, 0)
            while not self._stop.is_set():
                try:
                    _, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                    break
                except KafkaException as exc:
                    self._error = exc
                    time.sleep(0.5)
            else:
                return
            self._end_at_start = high
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            with self._lock:
                self._position = 0
            if high <= 0:
                self._loaded.set()
            while not self._stop.is_set():
                # poll() returns as soon as one record arrives (consume() would wait out
                # its timeout for a full batch), then drain what is already fetched.
                first = consumer.poll(self._poll_interval)
                messages = [] if first is None else [first, *consumer.consume(499, 0)]
                changes = []
                with self._lock:
                    for msg in messages:
                        err = msg.error()
                        if err is not None:
                            if err.code() != KafkaError._PARTITION_EOF:
                                log.warning("control table %s: %s", self.topic, err)
                            continue
                        key = (msg.key() or b"").decode()
                        raw = msg.value()
                        value = None if raw is None else orjson.loads(raw)
                        if value is None:
                            self._rows.pop(key, None)
                        else:
                            self._rows[key] = value
                        changes.append((key, value))
                        self._position = (msg.offset() or 0) + 1
                    if not messages:
                        # Transaction markers advance the position without a message.
                        pos = consumer.position([tp])[0].offset
                        if pos >= 0:
                            self._position = max(self._position, pos)
                    self._lock.notify_all()
                for key, value in changes:
                    for listener in self._listeners:
                        try:
                            listener(key, value)
                        except Exception:
                            log.exception("listener on %s failed for key %s", self.topic, key)
                if not self._loaded.is_set() and self._position >= (self._end_at_start or 0):
                    self._loaded.set()
        finally:
            consumer.close()
