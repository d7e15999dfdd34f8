"""Keeps the local views current: source topics → :class:`ResourceStore` per resource.

One thread per node reads every partition of every resource shared as a service
(``share_methods`` contains ``service``). The source topic is the changelog: a record
replaces the one with the same business key (the Kafka record key the connectors write,
or the catalogue's ``key_field`` when a record has none), a tombstone (null value) removes
it. Each consumed batch is one atomic write of records, index rows and next offsets, so a
restarted node resumes where its store ends (or rebuilds from offset 0 with
``rebuild_on_start``). Records that cannot be keyed or placed are counted, logged and
left in the source topic — never a crash.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from rocksdict import Cache

from hub import kafka, metrics
from hub.catalogue.model import Resource, ShareMethod
from hub.config import HubConfig
from hub.dataservice.store import ResourceStore, StoreError
from hub.regions import InvalidRegionCode, validate_region_code
from hub.registry.framing import unframe
from hub.state import ControlState

log = logging.getLogger(__name__)

REGION_HEADER = "govhub-region"
INGESTED_HEADER = "govhub-ingested-at"
_REFRESH_S = 1.0
_IDLE_S = 1.0


def serves(resource: Resource) -> bool:
    """Whether a resource is offered as a data service."""
    return ShareMethod.SERVICE in resource.share_methods


@dataclass
class View:
    """A resource's store and how far it has read."""

    resource: Resource
    topic: str
    store: ResourceStore
    partitions: int
    start_offsets: dict[int, int]
    end_at_start: dict[int, int]
    positions: dict[int, int] = field(default_factory=dict)
    loaded: threading.Event = field(default_factory=threading.Event)

    def progress(self) -> float:
        total = sum(max(0, self.end_at_start[p] - self.start_offsets[p]) for p in self.end_at_start)
        if total == 0:
            return 1.0
        done = sum(
            max(0, min(self.positions.get(p, 0), self.end_at_start[p]) - self.start_offsets[p])
            for p in self.end_at_start
        )
        return min(1.0, done / total)

    def caught_up(self) -> bool:
        return all(self.positions.get(p, 0) >= end for p, end in self.end_at_start.items())


class Materialiser:
    """Reads the source topics of service resources into local stores."""

    def __init__(self, config: HubConfig, state: ControlState, store_dir: Path) -> None:
        self._config = config
        self._state = state
        self._dir = store_dir
        self._indexes = config.data_service.indexes
        self.views: dict[str, View] = {}
        self._by_topic: dict[str, View] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.problems: dict[str, str] = {}
        """Resources whose view cannot be opened, with the reason (shown by /readyz)."""
        self._consumer: Any = None
        self._seen_generation = -1
        self._last_refresh = 0.0
        self._last_idle = 0.0
        self._frozen = False
        self.on_applied: Callable[[str], None] | None = None
        self._block_cache = Cache(config.data_service.block_cache_mb << 20)

    def view(self, resource_code: str) -> View | None:
        return self.views.get(resource_code)

    def readiness(self) -> list[str]:
        if self.error is not None:
            return [f"data service views stopped: {self.error}"]
        problems = [
            f"view of {code} loading ({view.progress():.0%})"
            for code, view in self.views.items()
            if not view.loaded.is_set()
        ]
        if not self.ready.is_set():
            problems.append("data service views not started")
        problems += [f"view of {code} not opened: {why}" for code, why in self.problems.items()]
        return problems

    # -- the reader thread -------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        cfg = self._config
        self._consumer = kafka.consumer(
            cfg.kafka.bootstrap_servers,
            f"govhub-dataservice-{uuid.uuid4().hex}",
            "govhub-dataservice",
            cfg.kafka.client_config,
            **{"fetch.max.bytes": 52_428_800, "queued.max.messages.kbytes": 262_144},
        )
        try:
            self._refresh()
            self.ready.set()
            while not stop.is_set():
                if (
                    self._state.generation != self._seen_generation
                    or time.monotonic() - self._last_refresh > _REFRESH_S * 10
                ):
                    self._refresh()
                messages = self._consumer.consume(cfg.data_service.consume_batch, 0.02)
                if messages:
                    self._apply(messages)
                elif time.monotonic() - self._last_idle > _IDLE_S or not self._all_loaded():
                    self._last_idle = time.monotonic()
                    self._note_idle()
                if not self._frozen and self.views and self._all_loaded():
                    # The loaded state is long-lived: keep it out of the cyclic collector's
                    # full passes, which otherwise stall calls for milliseconds at a time.
                    gc.collect()
                    gc.freeze()
                    self._frozen = True
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._consumer.close()

    def close(self) -> None:
        """Close the stores (after the API stopped reading them)."""
        with self._lock:
            for view in self.views.values():
                view.store.close()
            self.views.clear()
            self._by_topic.clear()

    def _all_loaded(self) -> bool:
        return all(view.loaded.is_set() for view in self.views.values())

    def _refresh(self) -> None:
        """Open a view for every service resource whose source topic exists."""
        self._seen_generation = self._state.generation
        self._last_refresh = time.monotonic()
        wanted = [r for r in self._state.resources().values() if serves(r)]
        missing = [r for r in wanted if r.code not in self.views]
        if not missing:
            return
        try:
            meta = self._consumer.list_topics(timeout=5)
        except KafkaException as exc:
            log.warning("data service: cannot list topics: %s", exc)
            return
        added = False
        for resource in missing:
            topic = self._state.topics.source(resource.department, resource.code)
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                continue  # published later: looked for again on the next refresh
            try:
                self._open(resource, topic, len(info.partitions))
            except StoreError as exc:
                if self.problems.get(resource.code) != str(exc):
                    log.error("data service: %s", exc)
                self.problems[resource.code] = str(exc)
                continue
            self.problems.pop(resource.code, None)
            added = True
        if added:
            assignment = [
                TopicPartition(
                    v.topic, p, v.positions[p] if v.positions[p] > 0 else OFFSET_BEGINNING
                )
                for v in self.views.values()
                for p in range(v.partitions)
            ]
            self._consumer.assign(assignment)

    def _open(self, resource: Resource, topic: str, partitions: int) -> None:
        indexed = tuple(self._indexes.get(resource.code, ()))
        unknown = [name for name in indexed if resource.field(name) is None]
        if unknown:
            raise StoreError(
                f"data_service.indexes.{resource.code} names fields the resource does not "
                f"have: {unknown}"
            )
        path = self._dir / topic
        if self._config.data_service.rebuild_on_start:
            ResourceStore.destroy(path)
        store = ResourceStore(path, topic, indexed, self._block_cache)
        offsets = store.offsets()
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for p in range(partitions):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10, cached=False
            )
            stored = offsets.get(p, 0)
            if stored < low:
                # Records below the log start are gone (retention); the store keeps what it
                # had read. A compacted source keeps the latest of every key, so nothing
                # current is lost.
                stored = low
            starts[p] = stored
            ends[p] = high
        view = View(resource, topic, store, partitions, starts, ends, dict(starts))
        if view.caught_up():
            view.loaded.set()
        with self._lock:
            self.views[resource.code] = view
            self._by_topic[topic] = view
        metrics.DATASERVICE_STORE_RECORDS.labels(resource.code).set(store.records)
        metrics.DATASERVICE_REBUILD_PROGRESS.labels(resource.code).set(view.progress())
        log.info(
            "data service view opened",
            extra={
                "resource": resource.code,
                "topic": topic,
                "records": store.records,
                "to_read": sum(ends[p] - starts[p] for p in ends),
            },
        )

    def _apply(self, messages: list[Any]) -> None:
        batches: dict[str, Any] = {}
        now_ms = int(time.time() * 1000)
        ages: dict[str, list[float]] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("data service consumer: %s", err)
                continue
            topic = msg.topic()
            view = self._by_topic.get(topic)
            if view is None:
                continue
            batch = batches.get(topic)
            if batch is None:
                batch = batches[topic] = view.store.batch()
            self._apply_one(view, batch, msg, now_ms, ages)
        for topic, batch in batches.items():
            view = self._by_topic[topic]
            code = view.resource.code
            put, deleted = batch.commit()
            if put:
                metrics.DATASERVICE_RECORDS_APPLIED.labels(code, "put").inc(put)
            if deleted:
                metrics.DATASERVICE_RECORDS_APPLIED.labels(code, "delete").inc(deleted)
            metrics.DATASERVICE_STORE_RECORDS.labels(code).set(view.store.records)
            if not view.loaded.is_set():
                metrics.DATASERVICE_REBUILD_PROGRESS.labels(code).set(view.progress())
                if view.caught_up():
                    view.loaded.set()
                    log.info(
                        "data service view loaded",
                        extra={"resource": code, "records": view.store.records},
                    )
            elif code in ages:
                # Freshness is measured once the view is live: during a rebuild the age
                # is that of the history, not of the path.
                done = time.time()
                child = metrics.DATASERVICE_FRESHNESS.labels(code)
                for source_s in ages[code]:
                    child.observe(max(0.0, done - source_s))
            if self.on_applied is not None:
                self.on_applied(code)

    def _apply_one(
        self, view: View, batch: Any, msg: Any, now_ms: int, ages: dict[str, list[float]]
    ) -> None:
        partition, offset = msg.partition(), msg.offset()
        view.positions[partition] = offset + 1
        code = view.resource.code
        raw_key = msg.key()
        value = msg.value()
        headers = msg.headers() or ()
        region: str | None = None
        source_ms = 0
        for name, hv in headers:
            if name == REGION_HEADER and hv is not None:
                region = hv.decode(errors="replace")
            elif name == INGESTED_HEADER and hv is not None:
                try:
                    source_ms = int(hv)
                except ValueError:
                    source_ms = 0
        if source_ms <= 0:
            ts_type, ts = msg.timestamp()
            source_ms = ts if ts_type and ts > 0 else now_ms
        key: str | None = None
        if raw_key is not None:
            try:
                key = raw_key.decode()
            except UnicodeDecodeError:
                key = None
        decoded: dict[str, Any] | None = None
        if value is None:
            if key is None:
                self._skip(view, batch, msg, "no-key")
                return
            batch.delete(key, partition, offset)
            ages.setdefault(code, []).append(source_ms / 1000)
            return
        needs_decode = key is None or view.store.indexed or not _valid_region(region)
        if needs_decode:
            decoded = self._decode(value)
            if decoded is None and key is None:
                self._skip(view, batch, msg, "undecodable")
                return
        if key is None:
            assert decoded is not None
            found = decoded.get(view.resource.key_field)
            if found is None:
                self._skip(view, batch, msg, "no-key")
                return
            key = str(found)
        if not _valid_region(region):
            candidate = None if decoded is None else decoded.get(view.resource.region_field)
            region = str(candidate) if _valid_region(candidate) else None
            if region is None:
                # Kept under its key (a get by key still answers not-found for everyone,
                # since no jurisdiction contains it), counted so operators see it.
                metrics.DATASERVICE_RECORDS_SKIPPED.labels(code, "no-region").inc()
        values: tuple[object, ...] = ()
        if view.store.indexed:
            values = tuple(
                None if decoded is None else decoded.get(name) for name in view.store.indexed
            )
        batch.put(key, partition, offset, source_ms, region, values, value)
        ages.setdefault(code, []).append(source_ms / 1000)

    def _decode(self, value: bytes) -> dict[str, Any] | None:
        try:
            schema_id, payload = unframe(value)
            return self._state.registry.codec(schema_id).decode(payload)
        except Exception:
            return None

    def _skip(self, view: View, batch: Any, msg: Any, reason: str) -> None:
        batch.advance(msg.partition(), msg.offset())
        metrics.DATASERVICE_RECORDS_SKIPPED.labels(view.resource.code, reason).inc()
        log.warning(
            "data service: source record not materialised",
            extra={
                "resource": view.resource.code,
                "reason": reason,
                "partition": msg.partition(),
                "offset": msg.offset(),
            },
        )

    def _note_idle(self) -> None:
        """Nothing fetched: views that are at their start-time end are loaded, and the
        lag and store size gauges are refreshed."""
        for view in self.views.values():
            code = view.resource.code
            if not view.loaded.is_set():
                # Transaction markers advance positions without messages.
                for tp in self._consumer.position(
                    [TopicPartition(view.topic, p) for p in range(view.partitions)]
                ):
                    if tp.offset >= 0:
                        view.positions[tp.partition] = max(
                            view.positions.get(tp.partition, 0), tp.offset
                        )
                if view.caught_up():
                    view.loaded.set()
                    metrics.DATASERVICE_REBUILD_PROGRESS.labels(code).set(1.0)
            lag = 0
            for p in range(view.partitions):
                try:
                    _, high = self._consumer.get_watermark_offsets(
                        TopicPartition(view.topic, p), cached=True
                    )
                except KafkaException:
                    continue
                if high >= 0:
                    lag += max(0, high - view.positions.get(p, 0))
            metrics.DATASERVICE_LAG.labels(code).set(lag)
            metrics.DATASERVICE_STORE_BYTES.labels(code).set(view.store.size_bytes())


def _valid_region(region: object) -> bool:
    if not isinstance(region, str):
        return False
    try:
        validate_region_code(region)
    except InvalidRegionCode:
        return False
    return True
