"""The ``gateway`` role: an aiohttp server, its streams, and the Kafka readers behind them.

:class:`GatewayService` runs its own event loop in the thread the runtime gives it. It
keeps the streams (:class:`~hub.gateway.session.Session`), their access, the readers, the
ownership directory and the ticket key, and applies policy changes from the control
state: a revoked, suspended or expired subscription, a suspended party or a rotated token
ends the affected streams at once (the control tables deliver a change within ~50 ms; the
stream's end event follows on the loop, and a connection that does not take it within
half a second is closed).
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import logging
import resource
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from confluent_kafka import KafkaException, TopicPartition

from hub import kafka, metrics
from hub.api.auth import TokenAuthenticator
from hub.audit.events import AuditWriter
from hub.config import ConfigError, HubConfig
from hub.crypto.kms import Kms
from hub.delivery import delivery_partition
from hub.gateway.access import PartyAccess, compute_access
from hub.gateway.directory import GatewayDirectory
from hub.gateway.fanout import FanOut
from hub.gateway.heap import HeapKeeper
from hub.gateway.pacing import Pacer
from hub.gateway.readers import CatchupScanner, LiveTail, Membership
from hub.gateway.session import Session, SessionState
from hub.gateway.tickets import TicketBook, token_fingerprint
from hub.gateway.timers import LoopStalls, WakeWheel
from hub.gateway.wire import EndEvent, StreamProtocol
from hub.parties.model import Party
from hub.state import ControlState

if TYPE_CHECKING:
    from hub.gateway.frontdoor import Doorkeeper

log = logging.getLogger(__name__)

# A stream cut off by policy must stop within a second even if its connection is stuck;
# others get longer to take their end event (a slow reader, a shutdown).
CUTOFF_GRACE_S = 0.5
END_GRACE_S = 2.0
CLOCK_SWEEP_S = 0.2
LAG_METRICS_S = 5.0
WAKE_SWEEP_S = 0.25


class GatewayError(Exception):
    """The gateway could not start."""


class GatewayService:
    def __init__(self, config: HubConfig, state: ControlState, kms: Kms) -> None:
        self.config = config
        self.gw = config.gateway
        self.state = state
        self.kms = kms
        self.instance = uuid.uuid4().hex[:12]
        self.topic = state.topics.delivery
        self.partitions = config.kafka.delivery_partitions
        self.fanout = FanOut(self._request_scan, self.end)
        self.pacer = Pacer()
        self.heap = HeapKeeper(self.gw.gc_collect_interval_s)
        self.tickets = TicketBook(state.keys, kms)
        self.authenticator = TokenAuthenticator(state)
        # Failed sign-ins at the gateway go to the audit trail like the api's.
        self.audit = AuditWriter(
            config.kafka.bootstrap_servers, state.topics, config.kafka.client_config, "gateway"
        )
        self.directory = GatewayDirectory(
            config.kafka.bootstrap_servers,
            config.kafka.topic_prefix,
            self.instance,
            self.gw.directory_heartbeat_s,
            config.kafka.client_config,
        )
        self.sessions: set[Session] = set()
        self.by_party: dict[str, set[Session]] = {}
        self.access: dict[str, PartyAccess] = {}
        self.polls: dict[tuple[str, str], Session] = {}
        self.polling: set[Session] = set()
        self.poll_expiry: dict[Session, float] = {}
        self.owned: frozenset[int] = frozenset()
        self.url: str | None = None
        self.port: int | None = None
        self._sub_owner: dict[str, str] = {}
        self._parties: dict[str, tuple[object, Party]] = {}
        self._timed: dict[str, int] = {}
        self.sent = SendTally()
        self.wheel = WakeWheel(WAKE_SWEEP_S)
        self.stalls = LoopStalls()
        self.tier_streams: dict[str, int] = {}
        self._party_subs: dict[str, set[str]] = {}
        self._borrowed_until: dict[int, float] = {}
        self._scanners: dict[int, CatchupScanner] = {}
        self._next_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live: LiveTail | None = None
        self._membership: Membership | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.doorkeeper: Doorkeeper | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._auth_pool = concurrent.futures.ThreadPoolExecutor(
            self.gw.auth_threads, thread_name_prefix="gateway-auth"
        )
        self._watermarks: Any = None
        self._watermark_lock = threading.Lock()
        self._children: dict[tuple[str, ...], Any] = {}
        self.ready = threading.Event()
        self.stopping = False
        self.error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (the runtime calls this in a thread of its own)."""
        _raise_file_limit(self.gw.max_subscribers + 1024)
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(stop))
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            log.exception("gateway stopped with an error")
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._auth_pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self, stop: threading.Event) -> None:
        from hub.gateway.frontdoor import Doorkeeper
        from hub.gateway.http import ENDPOINTS_KEY, build_gateway_app

        loop = asyncio.get_running_loop()
        cfg = self.config
        admin = kafka.admin_client(cfg.kafka.bootstrap_servers, cfg.kafka.client_config)
        self.partitions = await loop.run_in_executor(None, self._partition_count, admin)
        await loop.run_in_executor(None, self.directory.start, admin, cfg.kafka.replication_factor)
        await loop.run_in_executor(None, self.tickets.ensure_key)
        self._watch_policy(loop)
        app = build_gateway_app(self)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await self._runner.setup()
        ssl_context = self._ssl_context()
        # Connections start at the front door: long-polls take the lean path, the rest
        # go to aiohttp (its site would hand every connection to aiohttp).
        assert self._runner.server is not None
        doorkeeper = self.doorkeeper = Doorkeeper(app[ENDPOINTS_KEY], self._runner.server)
        self._server = await loop.create_server(
            doorkeeper.protocol, self.gw.host, self.gw.port, ssl=ssl_context, backlog=4096
        )
        sockets = self._server.sockets
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.gw.port
        scheme = "https" if ssl_context is not None else "http"
        self.url = self.gw.advertised_url or f"{scheme}://{self.gw.host}:{self.port}"
        self.directory.url = self.url
        self._live = LiveTail(cfg, self.topic, loop, self.fanout)
        self._live.start()
        self._membership = Membership(cfg, self.topic, loop, self._owned_changed, self._heartbeat)
        self._membership.start()
        self.heap.install()
        self._tasks = [
            loop.create_task(self._every(CLOCK_SWEEP_S, self._clock_sweep)),
            loop.create_task(self._every(LAG_METRICS_S, self._report_lag)),
            loop.create_task(self._every(1.0, self._flush_counts)),
            loop.create_task(self._every(1.0, self._housekeeping)),
            loop.create_task(self._every(5.0, doorkeeper.sweep)),
            loop.create_task(self._every(1.0, self.heap.tick)),
            loop.create_task(self._every(WAKE_SWEEP_S, self._wake_sweep)),
            loop.create_task(self.stalls.run()),
        ]
        self.ready.set()
        log.info(
            "gateway serving",
            extra={"url": self.url, "instance": self.instance, "partitions": self.partitions},
        )
        await loop.run_in_executor(None, stop.wait)
        await self._shutdown()

    async def _shutdown(self) -> None:
        # First stop being anyone's redirect target and leave the group, so the other
        # gateways take the partitions over while this one says goodbye to its streams.
        loop = asyncio.get_running_loop()
        self.stopping = True
        if self._membership is not None:
            await loop.run_in_executor(None, self._membership.stop)
        await loop.run_in_executor(None, self.directory.stop)
        for session in list(self.sessions):
            self.end(session, EndEvent("shutdown", None, "the gateway is stopping; reconnect"))
        deadline = time.monotonic() + 2.0
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        self.sent.flush(self.counter)
        for reader in (self._live, *self._scanners.values()):
            if reader is not None:
                await loop.run_in_executor(None, reader.stop)
        if self._server is not None:
            self._server.close()
        if self.doorkeeper is not None:
            self.doorkeeper.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._watermarks is not None:
            self._watermarks.close()
        await loop.run_in_executor(None, self.audit.close)
        self.heap.uninstall()

    def readiness(self) -> list[str]:
        problems = []
        if not self.ready.is_set():
            problems.append("gateway not started")
        if self.error is not None:
            problems.append(f"gateway failed: {self.error}")
        for reader in (self._live, self._membership):
            if reader is not None and reader.error is not None:
                problems.append(f"gateway {reader.name} reader failed: {reader.error}")
        return problems

    def _partition_count(self, admin: Any) -> int:
        metadata = admin.list_topics(self.topic, timeout=15)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise GatewayError(f"delivery topic {self.topic} is missing")
        return len(topic.partitions)

    def _ssl_context(self) -> ssl.SSLContext | None:
        try:
            return self.gw.server_ssl_context()
        except ConfigError as exc:
            raise GatewayError(f"gateway {exc}") from None

    async def _every(self, interval: float, job: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                job()
            except Exception:
                log.exception("gateway periodic job %s failed", getattr(job, "__name__", job))

    # -- ownership and partitions ------------------------------------------------------------
    def _owned_changed(self, owned: frozenset[int]) -> None:
        self.owned = owned
        self._update_tail()

    def _heartbeat(self, owned: frozenset[int]) -> None:
        self.directory.announce(owned)

    def _update_tail(self) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        for partition in self.fanout.partitions_in_use():
            self._borrowed_until[partition] = now + self.gw.borrow_idle_s
        for partition, until in list(self._borrowed_until.items()):
            if until < now:
                del self._borrowed_until[partition]
        self._live.want(self.owned | frozenset(self._borrowed_until))

    def _request_scan(self, partition: int) -> None:
        scanner = self._scanners.get(partition)
        if scanner is not None and scanner.finished.is_set():
            # It stopped (an error is logged): a new one takes the partition's scans over.
            del self._scanners[partition]
            scanner = None
        if scanner is None:
            if self._loop is None:
                return
            scanner = CatchupScanner(
                self.config,
                self.topic,
                self._loop,
                self.fanout,
                partition,
                self._may_retire,
                idle_close_s=self.gw.borrow_idle_s,
            )
            self._scanners[partition] = scanner
            scanner.start()
        else:
            scanner.wake()

    def _may_retire(self, partition: int, scanner: CatchupScanner) -> bool:
        tail = self.fanout.tails.get(partition)
        if tail is not None and (tail.waiting or (tail.round is not None and tail.round.size)):
            return False
        if self._scanners.get(partition) is scanner:
            del self._scanners[partition]
        return True

    def owner_url(self, partition: int) -> str | None:
        """Where a subscriber of ``partition`` should go, when not here."""
        if not self.gw.redirect or partition in self.owned:
            return None
        owner = self.directory.owner(partition)
        if owner is None or owner.instance == self.instance or not owner.url:
            return None
        return owner.url

    def high_watermark(self, partition: int) -> int:
        """The partition's end (blocking; for checking a cursor that runs ahead)."""
        with self._watermark_lock:
            if self._watermarks is None:
                cfg = self.config
                self._watermarks = kafka.consumer(
                    cfg.kafka.bootstrap_servers,
                    f"{self.gw.group_id}-watermarks",
                    "govhub-gateway-watermarks",
                    cfg.kafka.client_config,
                )
            try:
                _, high = self._watermarks.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=5, cached=False
                )
            except KafkaException as exc:
                raise GatewayError(f"cannot read the end of partition {partition}: {exc}") from exc
            return int(high)

    # -- policy ------------------------------------------------------------------------------
    def _watch_policy(self, loop: asyncio.AbstractEventLoop) -> None:
        def post(handler: Callable[[str, dict[str, Any] | None], None]) -> Any:
            def listener(key: str, value: dict[str, Any] | None) -> None:
                if not loop.is_closed():
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        loop.call_soon_threadsafe(handler, key, value)

            return listener

        self.state.subscriptions.add_listener(post(self._subscription_changed))
        self.state.parties.add_listener(post(self._party_changed))
        for key, row in self.state.subscriptions.items():
            self._index_subscription(key, row)

    def _index_subscription(self, key: str, row: dict[str, Any] | None) -> set[str]:
        touched = set()
        old = self._sub_owner.pop(key, None)
        if old is not None:
            self._party_subs.get(old, set()).discard(key)
            touched.add(old)
        subscriber = row.get("subscriber") if row is not None else None
        if isinstance(subscriber, str):
            self._sub_owner[key] = subscriber
            self._party_subs.setdefault(subscriber, set()).add(key)
            touched.add(subscriber)
        return touched

    def _subscription_changed(self, key: str, row: dict[str, Any] | None) -> None:
        if key.startswith("_"):
            return
        for party_id in self._index_subscription(key, row):
            if party_id in self.by_party:
                self.refresh_access(party_id)

    def _party_changed(self, key: str, row: dict[str, Any] | None) -> None:
        if key in self.by_party:
            self.refresh_access(key)

    def access_for(self, party: Party) -> PartyAccess:
        access = self.access.get(party.id)
        if access is None or party.id not in self.by_party:
            access = self._compute(party.id, party)
        return access

    def _compute(self, party_id: str, party: Party | None = None) -> PartyAccess:
        if party is None:
            party = self.state.party(party_id)
        subs = []
        for sid in sorted(self._party_subs.get(party_id, ())):
            sub = self.state.subscription(sid)
            if sub is not None:
                subs.append(sub)
        return compute_access(party, subs, int(time.time() * 1000), party_id)

    def refresh_access(self, party_id: str) -> None:
        access = self._compute(party_id)
        sessions = self.by_party.get(party_id, set())
        if sessions:
            self._remember(party_id, access)
        else:
            self._forget(party_id)
        for session in list(sessions):
            self._apply(session, access)

    def _apply(self, session: Session, access: PartyAccess) -> None:
        session.access = access
        if not access.open:
            self.end(
                session, EndEvent(access.denied_reason or "revoked", None, access.denied_message)
            )
        elif (
            session.auth_fingerprint is not None
            and token_fingerprint(access.token_hash) != session.auth_fingerprint
        ):
            self.end(
                session,
                EndEvent("credentials-changed", None, "the party's token was rotated"),
            )
        else:
            session.wake()

    def _wake_sweep(self) -> None:
        self.wheel.sweep(time.monotonic())

    def party(self, party_id: str) -> Party | None:
        """The party, parsed once per change of its row (streams reconnect and poll often)."""
        row = self.state.parties.get(party_id)
        if row is None:
            return None
        cached = self._parties.get(party_id)
        if cached is not None and cached[0] is row:
            return cached[1]
        party = self.state.party(party_id)
        if party is not None and party_id in self.by_party:
            self._parties[party_id] = (row, party)
        return party

    def _clock_sweep(self) -> None:
        if not self._timed:
            return
        now = int(time.time() * 1000)
        for party_id in [p for p, until in self._timed.items() if now >= until]:
            self.refresh_access(party_id)

    def _remember(self, party_id: str, access: PartyAccess) -> None:
        self.access[party_id] = access
        if access.valid_until_ms is None:
            self._timed.pop(party_id, None)
        else:
            self._timed[party_id] = access.valid_until_ms

    def _forget(self, party_id: str) -> None:
        self.access.pop(party_id, None)
        self._timed.pop(party_id, None)
        self._parties.pop(party_id, None)

    # -- streams -----------------------------------------------------------------------------
    def open_session(
        self,
        party: Party,
        access: PartyAccess,
        partition: int,
        protocol: StreamProtocol,
        start: int,
        from_earliest: bool,
        client: str,
        auth_fingerprint: str | None,
    ) -> Session:
        for other in list(self.by_party.get(party.id, ())):
            if other.client == client:
                self.end(other, EndEvent("replaced", None, "a newer stream of this client"))
        self._next_id += 1
        session = Session(
            self._next_id,
            party.id,
            partition,
            protocol,
            access,
            start,
            self.gw.buffer_bytes(access.tier),
            client=client,
            from_earliest=from_earliest,
        )
        session.auth_fingerprint = auth_fingerprint
        session.wheel = self.wheel
        self.sessions.add(session)
        self.tier_streams[access.tier] = self.tier_streams.get(access.tier, 0) + 1
        self.by_party.setdefault(party.id, set()).add(session)
        self._remember(party.id, access)
        self.fanout.attach(session)
        if partition not in self._borrowed_until and partition not in self.owned:
            self._borrowed_until[partition] = time.monotonic() + self.gw.borrow_idle_s
            self._update_tail()
        metrics.GATEWAY_SUBSCRIBERS.labels(access.tier, protocol).inc()
        metrics.GATEWAY_CONNECTS.labels("served").inc()
        return session

    def end(self, session: Session, end: EndEvent) -> None:
        """End a stream: its handler sends ``end`` and closes; a connection that does not
        take it within the grace period is closed."""
        if session.closed:
            return
        session.finish(end)
        if session.protocol == "poll" and session not in self.polling:
            self.release(session, end.reason)
        elif self._loop is not None:
            grace = CUTOFF_GRACE_S if end.final else END_GRACE_S
            self._loop.call_later(grace, self._abort_if_open, session)

    def _abort_if_open(self, session: Session) -> None:
        if session in self.sessions and session.on_abort is not None:
            session.on_abort()

    def release(self, session: Session, reason: str) -> None:
        """The stream is over (sent its end, or the client went away)."""
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        self.wheel.unfile(session)
        self.fanout.release(session)
        left = self.tier_streams.get(session.tier, 0) - 1
        if left > 0:
            self.tier_streams[session.tier] = left
        else:
            self.tier_streams.pop(session.tier, None)
        parties = self.by_party.get(session.recipient)
        if parties is not None:
            parties.discard(session)
            if not parties:
                del self.by_party[session.recipient]
                self._forget(session.recipient)
                self.pacer.forget(set(session.access.rate_limits))
        if self.polls.get((session.recipient, session.client)) is session:
            del self.polls[(session.recipient, session.client)]
        self.poll_expiry.pop(session, None)
        metrics.GATEWAY_SUBSCRIBERS.labels(session.tier, session.protocol).dec()
        metrics.GATEWAY_DISCONNECTS.labels(reason).inc()
        self.report_throttling(session)

    def report_throttling(self, session: Session) -> None:
        if session.throttled_s > 0:
            self.counter(metrics.GATEWAY_THROTTLED_SECONDS, session.tier).inc(session.throttled_s)
            session.throttled_s = 0.0

    def partition_of(self, party_id: str) -> int:
        return delivery_partition(party_id, self.partitions)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def counter(self, metric: Any, *labels: str) -> Any:
        """A labelled child, cached (``labels()`` takes a lock and builds a key each call)."""
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- periodic ----------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        for partition, tail in list(self.fanout.tails.items()):
            scanner = self._scanners.get(partition)
            pending = tail.waiting or (tail.round is not None and tail.round.size)
            if pending and (scanner is None or scanner.finished.is_set()):
                self._request_scan(partition)
        now = time.monotonic()
        for session, expiry in list(self.poll_expiry.items()):
            if expiry < now and session not in self.polling:
                self.release(session, "poll-expired")
        self._update_tail()

    def _flush_counts(self) -> None:
        self.sent.flush(self.counter)

    def _report_lag(self) -> None:
        """Lag per tier. Only streams with frames queued have any, so only they are visited
        (a pass over every stream cost ~6 ms of CPU at 10,000 streams, stalling the fan-out);
        the means divide by the tier's stream count, kept as streams come and go."""
        now_ms = time.time() * 1000
        seconds: dict[str, list[float]] = {}
        frames: dict[str, list[int]] = {}
        for session in [s for s in self.sessions if s.buffer]:
            tier = session.tier
            seconds.setdefault(tier, []).append(
                max(0.0, (now_ms - session.buffer[0].timestamp_ms) / 1000)
            )
            frames.setdefault(tier, []).append(len(session.buffer))
        tiers = self.tier_streams.keys() | {labels[0] for labels in _lag_tiers(self._children)}
        for tier in tiers:
            streams = max(1, self.tier_streams.get(tier, 0))
            lags = seconds.get(tier, [0.0])
            counts = frames.get(tier, [0])
            self.counter(metrics.GATEWAY_LAG_SECONDS, tier, "max").set(max(lags))
            self.counter(metrics.GATEWAY_LAG_SECONDS, tier, "mean").set(sum(lags) / streams)
            self.counter(metrics.GATEWAY_LAG_FRAMES, tier, "max").set(max(counts))
            self.counter(metrics.GATEWAY_LAG_FRAMES, tier, "mean").set(sum(counts) / streams)

    def stats(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for session in self.sessions:
            states[session.state.value] = states.get(session.state.value, 0) + 1
        return {
            "instance": self.instance,
            "url": self.url,
            "streams": len(self.sessions),
            "states": states,
            "owned": sorted(self.owned),
            "tailed": sorted(self._live.assigned) if self._live is not None else [],
            "scans": self.fanout.scans_started,
            "frames_live": self.fanout.frames_live,
            "frames_scanned": self.fanout.frames_scanned,
            **self.heap.stats(),
            **self.stalls.stats(),
        }


class SendTally:
    """What the streams sent, in plain counters on the hot path; :meth:`flush` hands it to
    Prometheus once a second (a labelled Prometheus update takes a lock each time).

    Frame latencies are counted straight into the histogram's buckets: observing each
    frame at flush time cost about a microsecond per frame — tens of milliseconds of
    stalled fan-out once a second at full load."""

    def __init__(self, bounds: tuple[float, ...] | None = None) -> None:
        self.bounds = (
            bounds
            if bounds is not None
            else metrics.histogram_bounds(metrics.GATEWAY_FRAME_LATENCY, metrics.LATENCY_BUCKETS)
        )
        self.frames: dict[tuple[str, str], list[int]] = {}
        self.records: dict[str, int] = {}
        self.latencies: dict[str, metrics.LatencyCounts] = {}

    def add(
        self, tier: str, protocol: str, frames: int, size: int, records: int, latencies: list[float]
    ) -> None:
        counts = self.frames.get((tier, protocol))
        if counts is None:
            counts = self.frames[(tier, protocol)] = [0, 0]
        counts[0] += frames
        counts[1] += size
        self.records[tier] = self.records.get(tier, 0) + records
        pending = self.latencies.get(tier)
        if pending is None:
            pending = self.latencies[tier] = metrics.LatencyCounts(len(self.bounds))
        bounds = self.bounds
        for value in latencies:
            pending.buckets[bisect.bisect_left(bounds, value)] += 1
            pending.total += value

    def add_one(self, tier: str, protocol: str, size: int, records: int, latency: float) -> None:
        """One frame (the fan-out's direct writes)."""
        counts = self.frames.get((tier, protocol))
        if counts is None:
            counts = self.frames[(tier, protocol)] = [0, 0]
        counts[0] += 1
        counts[1] += size
        self.records[tier] = self.records.get(tier, 0) + records
        pending = self.latencies.get(tier)
        if pending is None:
            pending = self.latencies[tier] = metrics.LatencyCounts(len(self.bounds))
        pending.buckets[bisect.bisect_left(self.bounds, latency)] += 1
        pending.total += latency

    def flush(self, child: Callable[..., Any]) -> None:
        frames, self.frames = self.frames, {}
        records, self.records = self.records, {}
        latencies, self.latencies = self.latencies, {}
        for (tier, protocol), (count, size) in frames.items():
            child(metrics.GATEWAY_FRAMES_SENT, tier, protocol).inc(count)
            child(metrics.GATEWAY_BYTES_SENT, tier, protocol).inc(size)
        for tier, count in records.items():
            child(metrics.GATEWAY_RECORDS_SENT, tier).inc(count)
        for tier, pending in latencies.items():
            pending.add_to(child(metrics.GATEWAY_FRAME_LATENCY, tier), self.bounds)


def _raise_file_limit(wanted: int) -> None:
    """Each stream is a socket: raise the soft limit on open files towards ``wanted``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning(
            "open-file limit %d is below max_subscribers + 1024 (%d): raise 'ulimit -n'",
            target,
            wanted,
        )


def _lag_tiers(children: dict[tuple[str, ...], Any]) -> list[tuple[str, ...]]:
    name = metrics.GATEWAY_LAG_SECONDS._name
    return [key[1:] for key in children if key[0] == name]


__all__ = ["GatewayError", "GatewayService", "SessionState"]
