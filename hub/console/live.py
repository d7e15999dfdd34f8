"""Live flow numbers for the console's 运行监控 page, from what the hub really writes.

- **Deliveries** (records delivered per second, by resource and by recipient tier): the
  delivery rows the routers commit to ``<prefix>_govhub.audit`` with every frame (entries
  per frame); the tier is the recipient party's (``department`` or its administrative
  level), as in the router's metrics.
- **Records in** per resource and **dead letters** per department: the growth of the end
  offsets of the source and dead-letter topics (offsets, so a transaction marker counts
  as one; the rate is exact for the non-transactional connectors).
- **Connected subscribers and delivery lag by tier**: the ``/metrics`` of every live gateway
  listed in the gateway directory (``<prefix>_govhub.gateways``):
  ``govhub_gateway_subscribers`` and ``govhub_gateway_subscriber_lag_seconds{stat="max"}``.

One :class:`LiveFlow` per api process, started by the first viewer; one thread tails the
audit topic and polls offsets and gateways once a second; :meth:`LiveFlow.snapshot`
returns the figures the page streams (SSE) to the browser.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from hub import kafka
from hub.console.auditview import DeliveryRow, parse_delivery_rows
from hub.controlstate import CompactedTable
from hub.gateway.access import tier_of
from hub.gateway.directory import GatewayRow, directory_topic
from hub.metrics import CONSOLE_LIVE_ERRORS
from hub.state import ControlState

log = logging.getLogger(__name__)

WINDOW_S = 120  # seconds of history kept for the chart
RATE_S = 5  # rates are averages over the last few complete seconds
GATEWAY_STALE_MS = 30_000
_POLL_S = 1.0
_GATEWAY_POLL_S = 2.0
_METADATA_S = 10.0  # how long topic metadata (partitions, new topics) is reused


@dataclass(frozen=True, slots=True)
class Second:
    at: int
    deliveries: dict[tuple[str, str], int]  # (resource, tier) -> records delivered


@dataclass(frozen=True, slots=True)
class Scope:
    """What one viewer may see: the topics of its resources, and whether hub-wide figures."""

    source_topics: dict[str, str]  # topic -> resource code
    dlq_topics: dict[str, str]  # topic -> department
    resources: frozenset[str] | None  # None: every resource
    hub_wide: bool = True


class FlowWindow:
    """The figures of the last minutes, from plain inputs (no Kafka): delivery rows counted
    per second, end-offset samples, the gateways' numbers. Not thread-safe on its own."""

    def __init__(self, start_s: int) -> None:
        self._seconds: collections.deque[Second] = collections.deque(maxlen=WINDOW_S + RATE_S)
        self._current: dict[tuple[str, str], int] = {}
        self._current_at = start_s
        self._delivered_total: dict[tuple[str, str], int] = {}
        self._offsets: collections.deque[tuple[float, dict[str, int]]] = collections.deque(
            maxlen=4 * RATE_S
        )
        self.gateways: dict[str, Any] = {"urls": [], "subscribers": {}, "lag_s": {}}

    def _roll(self, now_s: int) -> None:
        """Close the seconds before ``now_s``."""
        if now_s > self._current_at:
            self._seconds.append(Second(self._current_at, self._current))
            for gap in range(self._current_at + 1, min(now_s, self._current_at + WINDOW_S)):
                self._seconds.append(Second(gap, {}))
            self._current, self._current_at = {}, now_s

    def count(self, rows: list[DeliveryRow], tier_of: Callable[[str], str], now_s: int) -> None:
        self._roll(now_s)
        for row in rows:
            key = (row.resource, tier_of(row.recipient))
            self._current[key] = self._current.get(key, 0) + row.entries
            self._delivered_total[key] = self._delivered_total.get(key, 0) + row.entries

    def sample_offsets(self, at: float, sums: dict[str, int]) -> None:
        """End offsets summed per topic, sampled at ``at`` (monotonic seconds)."""
        self._offsets.append((at, sums))

    def snapshot(self, now_s: int, scope: Scope) -> dict[str, Any]:
        self._roll(now_s)

        def keep(resource: str) -> bool:
            return scope.resources is None or resource in scope.resources

        by_resource: dict[str, float] = {}
        by_tier: dict[str, float] = {}
        for second in self._seconds:
            if now_s - RATE_S <= second.at < now_s:
                for (resource, tier), n in second.deliveries.items():
                    if keep(resource):
                        by_resource[resource] = by_resource.get(resource, 0) + n / RATE_S
                        by_tier[tier] = by_tier.get(tier, 0) + n / RATE_S
        by_second = {s.at: s for s in self._seconds}
        series = []
        for at in range(now_s - WINDOW_S, now_s):
            found = by_second.get(at)
            n = 0 if found is None else sum(v for (r, _), v in found.deliveries.items() if keep(r))
            series.append([at, n])
        records_in, dead = self._offset_rates(scope)
        delivered: dict[str, int] = {}
        for (resource, _), n in self._delivered_total.items():
            if keep(resource):
                delivered[resource] = delivered.get(resource, 0) + n
        out: dict[str, Any] = {
            "records_in_per_s": records_in,
            "deliveries_per_s_by_resource": {k: round(v, 1) for k, v in by_resource.items()},
            "deliveries_per_s_by_tier": {k: round(v, 1) for k, v in by_tier.items()},
            "delivered_since_start": delivered,
            "dead_letters": dead,
            "series": series,
        }
        if scope.hub_wide:
            out["gateways"] = list(self.gateways["urls"])
            out["subscribers_by_tier"] = dict(self.gateways["subscribers"])
            out["lag_s_by_tier"] = dict(self.gateways["lag_s"])
        return out

    def _offset_rates(self, scope: Scope) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Records in per second by resource; dead letters (total, per second) by department,
        over the samples of the last :data:`RATE_S` seconds."""
        records_in: dict[str, float] = {}
        dead: dict[str, dict[str, float]] = {}
        if not self._offsets:
            return records_in, dead
        latest_at, latest = self._offsets[-1]
        window = [o for o in self._offsets if o[0] >= latest_at - RATE_S]
        first_at, first = window[0]
        span = latest_at - first_at

        def rate(topic: str) -> float:
            if span <= 0:
                return 0.0
            return round((latest.get(topic, 0) - first.get(topic, latest.get(topic, 0))) / span, 1)

        for topic, code in scope.source_topics.items():
            records_in[code] = rate(topic)
        for topic, department in scope.dlq_topics.items():
            dead[department] = {"total": latest.get(topic, 0), "per_s": rate(topic)}
        return records_in, dead


class LiveFlow:
    def __init__(self, state: ControlState, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock
        self._lock = threading.Lock()
        self._window = FlowWindow(int(clock()))
        self._directory: CompactedTable | None = None
        self._metadata: dict[str, Any] = {}
        self._metadata_until = 0.0
        self._next_gateway_poll = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self.error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="govhub-console-live", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._directory is not None:
            self._directory.stop()

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    # -- the figures -----------------------------------------------------------------------
    def scope(self, resources: set[str] | None = None, hub_wide: bool = True) -> Scope:
        """The topics of ``resources`` (None: every resource in the catalogue)."""
        topics = self._state.topics
        listed = [
            r for r in self._state.resources().values() if resources is None or r.code in resources
        ]
        return Scope(
            {topics.source(r.department, r.code): r.code for r in listed},
            {topics.dlq(r.department): r.department for r in listed},
            None if resources is None else frozenset(resources),
            hub_wide,
        )

    def snapshot(self, resources: set[str] | None = None, hub_wide: bool = True) -> dict[str, Any]:
        """The page's figures; ``resources`` limits them to a department's resources
        (gateway figures, which span every resource, only when ``hub_wide``)."""
        scope = self.scope(resources, hub_wide)
        with self._lock:
            out = self._window.snapshot(int(self._clock()), scope)
        out["at_ms"] = int(self._clock() * 1000)
        out["error"] = self.error
        return out

    # -- the thread ------------------------------------------------------------------------
    def _count(self, value: bytes) -> None:
        rows = parse_delivery_rows(value)
        if not rows:
            return
        parties = self._state.party_map()

        def tier(recipient: str) -> str:
            party = parties.get(recipient)
            return tier_of(party) if party is not None else "unknown"

        with self._lock:
            self._window.count(rows, tier, int(self._clock()))

    def _run(self) -> None:
        cfg = self._state.config.kafka
        consumer: Consumer = kafka.consumer(
            cfg.bootstrap_servers,
            f"govhub-console-live-{uuid.uuid4().hex}",
            "govhub-console-live",
            cfg.client_config,
        )
        # Offsets are asked on a client of their own: on the tailing consumer they would
        # queue behind its fetch long-polls (up to half a second per request).
        offsets: Consumer = kafka.consumer(
            cfg.bootstrap_servers,
            f"govhub-console-offsets-{uuid.uuid4().hex}",
            "govhub-console-offsets",
            cfg.client_config,
        )
        try:
            self._tail_from_end(consumer)
            self._started.set()
            next_poll = 0.0
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    value = msg.value()
                    if msg.error() is None and value:
                        self._count(value)
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + _POLL_S
                    self._poll(offsets)
        except Exception as exc:  # the page shows the reason; the api carries on
            log.exception("console live flow stopped")
            self.error = str(exc)
            CONSOLE_LIVE_ERRORS.inc()
        finally:
            self._started.set()
            consumer.close()
            offsets.close()

    def _tail_from_end(self, consumer: Consumer) -> None:
        topic = self._state.topics.audit
        info = consumer.list_topics(topic, timeout=10).topics.get(topic)
        partitions = sorted(info.partitions) if info is not None and info.error is None else []
        consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])

    def _poll(self, consumer: Consumer) -> None:
        try:
            self._poll_offsets(consumer)
        except KafkaException as exc:
            self.error = f"offsets: {exc}"
            CONSOLE_LIVE_ERRORS.inc()
        now = time.monotonic()
        if now >= self._next_gateway_poll:
            self._next_gateway_poll = now + _GATEWAY_POLL_S
            self._poll_gateways()

    def _poll_offsets(self, consumer: Consumer) -> None:
        topics = self._state.topics
        resources = list(self._state.resources().values())
        wanted = {topics.source(r.department, r.code) for r in resources}
        wanted |= {topics.dlq(r.department) for r in resources}
        now = time.monotonic()
        if now >= self._metadata_until:
            self._metadata = consumer.list_topics(timeout=5).topics
            self._metadata_until = now + _METADATA_S
        metadata = self._metadata
        sums: dict[str, int] = {}
        for topic in wanted:
            info = metadata.get(topic)
            if info is None or info.error is not None:
                continue
            sums[topic] = sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), 5)[1]
                for p in info.partitions
            )
        with self._lock:
            self._window.sample_offsets(time.monotonic(), sums)
        self.error = None

    def _poll_gateways(self) -> None:
        rows = self._gateway_rows()
        now_ms = int(self._clock() * 1000)
        live = [r for r in rows if now_ms - r.heartbeat_ms < GATEWAY_STALE_MS and r.url]
        subscribers: dict[str, float] = {}
        lag: dict[str, float] = {}
        for row in live:
            try:
                with urllib.request.urlopen(row.url.rstrip("/") + "/metrics", timeout=1) as resp:
                    text = resp.read().decode()
            except OSError as exc:
                log.info("gateway %s metrics unreadable: %s", row.url, exc)
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    tier = sample.labels.get("tier", "")
                    if sample.name == "govhub_gateway_subscribers":
                        subscribers[tier] = subscribers.get(tier, 0) + sample.value
                    elif (
                        sample.name == "govhub_gateway_subscriber_lag_seconds"
                        and sample.labels.get("stat") == "max"
                    ):
                        lag[tier] = max(lag.get(tier, 0.0), round(sample.value, 3))
        with self._lock:
            self._window.gateways = {
                "urls": sorted(r.url for r in live),
                "subscribers": {k: int(v) for k, v in subscribers.items()},
                "lag_s": lag,
            }

    def _gateway_rows(self) -> list[GatewayRow]:
        if self._directory is None:
            cfg = self._state.config.kafka
            topic = directory_topic(cfg.topic_prefix)
            if topic not in self._metadata:
                return []  # no gateway has run on this hub (as of the last metadata read)
            table = CompactedTable(cfg.bootstrap_servers, topic, client_config=cfg.client_config)
            table.start(10)
            self._directory = table
        rows = [GatewayRow.parse(row) for _, row in self._directory.items()]
        return [r for r in rows if r is not None]
