"""The subscriber client for the gateway: plain HTTP (SSE, WebSocket or NDJSON long-poll).

For units without Kafka access (直达基层): it connects to a gateway with its token, states
the cursor its sink stored, and receives its frames from there. Each batch of events is
checked and written to the sink together with the cursor that follows it, so the sink
holds every record exactly once — across disconnects, gateway restarts and redirects.

Checks, in order, for every frame event:

1. the stream continues from the cursor (``after`` equals it; a frame below the cursor
   was already written and is skipped): else :class:`SequenceGap`;
2. the frame is for this recipient, its data key (fetched once per key id, the key epoch)
   opens it, and the AEAD tag over header and entries holds — :class:`TamperedFrame`,
   :class:`WrongKey`, :class:`FrameRejected` otherwise;
3. its source offsets follow the last ones processed (replays are skipped).

Transient trouble — the gateway restarting, a dropped connection, ``slow-consumer``, the
api unreachable for a key — is retried with backoff and jitter over the configured gateway
URLs; a redirect to the partition's owner is followed. Refusals that retrying cannot fix
raise at once:
:class:`SubscriptionRevoked` (revoked, suspended, expired, party suspended, token expired
or rotated), :class:`GatewayRefused`, :class:`StreamReplaced`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
from yarl import URL

from connectors.base import Backpressure
from connectors.sdk.errors import (
    GatewayRefused,
    KeyFetchError,
    SequenceGap,
    StreamReplaced,
    SubscriberError,
    SubscriptionRevoked,
    WrongKey,
)
from connectors.sdk.frames import FrameOpener
from connectors.sdk.hubclient import HubClient
from connectors.sinks.base import Cursor, DeliveredRecord, Sink
from hub import metrics
from hub.crypto.frames import FrameSequenceChecker
from hub.crypto.keyrelease import KemSuite
from hub.gateway.wire import (
    REASON_HEADER,
    STREAM_PATHS,
    EndEvent,
    FrameEvent,
    PositionEvent,
    SseParser,
    StreamEvent,
    StreamFormatError,
    StreamProtocol,
    WelcomeEvent,
    decode_json_event,
    decode_ws_binary,
    format_cursor,
)

log = logging.getLogger(__name__)

REVOKED_REASONS = frozenset(
    {
        "revoked",
        "suspended",
        "expired",
        "no-subscription",
        "party-suspended",
        "token-expired",
        "credentials-changed",
    }
)
_TICKET_MARGIN_MS = 60_000


@dataclass(frozen=True)
class GatewaySettings:
    """Where and who: the gateway URL(s), the api (keys, schemas), the party's secrets."""

    gateway_urls: tuple[str, ...]
    api_url: str
    recipient: str
    token: str = field(repr=False)
    private_key: bytes = field(repr=False)
    kem: KemSuite = KemSuite.X25519
    protocol: StreamProtocol = "sse"
    client: str = "default"
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 10.0
    poll_wait_s: float = 20.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 45.0  # three keep-alive intervals of the gateway's default
    max_batch_events: int = 256
    position_write_interval_s: float = 60.0
    ssl_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if not self.gateway_urls:
            raise ValueError("gateway_urls: give at least one gateway URL")
        for url in self.gateway_urls:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"gateway_urls: {url!r} is not an http(s) URL")
        if self.protocol not in STREAM_PATHS:
            raise ValueError(
                f"protocol must be one of {sorted(STREAM_PATHS)}, not {self.protocol!r}"
            )
        if not self.recipient or not self.token:
            raise ValueError("recipient and token are required")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect delays must be positive, initial <= max")


class StreamChain:
    """The stream's continuity: the cursor, and the checks each event must pass."""

    def __init__(self, partition: int | None, next_offset: int | None) -> None:
        self.partition = partition
        self.next_offset = next_offset
        self.duplicates = 0

    def welcome(self, event: WelcomeEvent) -> None:
        if self.partition is not None and event.partition != self.partition:
            raise SequenceGap(
                f"gateway streams partition {event.partition}, the cursor is for "
                f"partition {self.partition}"
            )
        if self.next_offset is not None and event.next_offset > self.next_offset:
            raise SequenceGap(
                f"gateway starts at offset {event.next_offset}, but the cursor is at "
                f"{self.next_offset}",
                (self.next_offset, event.next_offset),
            )
        self.partition = event.partition
        if self.next_offset is None:
            self.next_offset = event.next_offset

    def frame(self, event: FrameEvent) -> bool:
        """True when the frame is new; False for one at or below the cursor (skip it)."""
        if self.next_offset is None:
            raise SequenceGap("frame before the stream's welcome")
        if event.offset < self.next_offset:
            self.duplicates += 1
            return False
        if event.after > self.next_offset:
            raise SequenceGap(
                f"the stream skipped offsets {self.next_offset}..{event.after - 1} of "
                f"partition {self.partition} (next frame at {event.offset})",
                (self.next_offset, event.after),
            )
        self.next_offset = event.offset + 1
        return True

    def position(self, event: PositionEvent) -> bool:
        if self.next_offset is None or event.next_offset <= self.next_offset:
            return False
        self.next_offset = event.next_offset
        return True


class _Transient(Exception):
    """Reconnect (after backoff)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class _TicketRefused(Exception):
    pass


class _Closed:
    """Queue sentinel: the reader stopped (``error`` None: the stop was asked for)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class GatewaySubscriber:
    """Streams one recipient's records from the gateway into a sink, exactly once."""

    def __init__(
        self,
        settings: GatewaySettings,
        sink: Sink,
        http: aiohttp.ClientSession | None = None,
        hub: HubClient | None = None,
    ) -> None:
        self._s = settings
        self._sink = sink
        self._http = http
        self._hub = hub or HubClient(settings.api_url, settings.token)
        self._opener = FrameOpener(
            settings.recipient, self._hub, settings.private_key, settings.kem
        )
        self._ticket: str | None = None
        self._ticket_expires_ms = 0
        self._url_index = 0
        self._preferred: str | None = None
        self._halt = threading.Event()
        self._last_cursor_write = 0.0
        self.records = 0
        self.connects = 0
        self.reconnects = 0
        self.redirects = 0
        self.backpressure_waits = 0
        self.duplicates_skipped = 0
        self.last_end: EndEvent | None = None
        self.recent_latencies_ms: deque[float] = deque(maxlen=2000)

    @property
    def frames(self) -> int:
        return self._opener.frames

    @property
    def keys_fetched(self) -> int:
        return self._opener.keys_fetched

    # -- the connect loop --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set; raises the SubscriberError that ended it."""
        self._halt.clear()
        own = self._http is None
        http = self._http or aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=self._s.ssl_context or True)
        )
        backoff = self._s.reconnect_initial_s
        try:
            while not stop.is_set():
                base = self._base_url()
                try:
                    delivered = await self._stream(http, base, stop)
                    backoff = self._s.reconnect_initial_s if delivered else backoff
                    if stop.is_set():
                        return
                    await self._pause(stop, self._s.reconnect_initial_s * random.uniform(0.5, 1))
                except _TicketRefused:
                    self._ticket = None
                except _Redirect as redirect:
                    self.redirects += 1
                    parts = urlsplit(redirect.location)
                    self._preferred = f"{parts.scheme}://{parts.netloc}"
                except _Transient as exc:
                    self._preferred = None
                    self._url_index += 1
                    delay = exc.retry_after if exc.retry_after is not None else backoff
                    log.info("gateway stream interrupted (%s); reconnecting in %.1f s", exc, delay)
                    await self._pause(stop, delay * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, self._s.reconnect_max_s)
                self.reconnects += 1
        finally:
            self._halt.set()
            if own:
                await http.close()

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    def _base_url(self) -> str:
        if self._preferred is not None:
            return self._preferred
        urls = self._s.gateway_urls
        return urls[self._url_index % len(urls)].rstrip("/")

    def _headers(self) -> dict[str, str]:
        now_ms = int(time.time() * 1000)
        if self._ticket is not None and self._ticket_expires_ms - _TICKET_MARGIN_MS > now_ms:
            credential = self._ticket
        else:
            self._ticket = None
            credential = self._s.token
        return {"Authorization": f"Bearer {credential}"}

    def _url(self, base: str, partition: int | None, next_offset: int | None, **extra: Any) -> str:
        query: dict[str, Any] = {"client": self._s.client, **extra}
        if self._preferred is not None and base == self._preferred:
            query["redirected"] = "1"  # served where it was sent: never a second hop
        if partition is not None and next_offset is not None:
            query["cursor"] = format_cursor(partition, next_offset)
        return f"{base}{STREAM_PATHS[self._s.protocol]}?{urlencode(query)}"

    # -- one stream --------------------------------------------------------------------------
    async def _stream(self, http: aiohttp.ClientSession, base: str, stop: asyncio.Event) -> bool:
        """One connection: True when it delivered anything (resets the backoff)."""
        cursor = await asyncio.to_thread(self._sink.load_cursor)
        partition = cursor.partition if cursor else None
        start = cursor.next_offset if cursor else None
        sequence = (
            FrameSequenceChecker.from_dict(cursor.sequence) if cursor else FrameSequenceChecker()
        )
        chain = StreamChain(partition, start)
        queue: asyncio.Queue[StreamEvent | _Closed] = asyncio.Queue(self._s.max_batch_events * 2)
        reader = asyncio.create_task(self._read(http, base, partition, start, queue))
        stopper = asyncio.create_task(_put_on(stop, queue))
        self.connects += 1
        delivered = False
        try:
            while True:
                first = await queue.get()
                events: list[StreamEvent] = []
                closed: _Closed | None = None
                item: StreamEvent | _Closed = first
                while True:
                    if isinstance(item, _Closed):
                        closed = item
                        break
                    events.append(item)
                    if len(events) >= self._s.max_batch_events or queue.empty():
                        break
                    item = queue.get_nowait()
                if events:
                    end = await asyncio.to_thread(self._process, events, chain, sequence)
                    delivered = True
                    if end is not None:
                        self._handle_end(end, chain)
                        return delivered
                if closed is not None:
                    if closed.error is None:
                        return delivered
                    raise closed.error
        finally:
            stopper.cancel()
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    def _handle_end(self, end: EndEvent, chain: StreamChain) -> None:
        self.last_end = end
        if end.reason in REVOKED_REASONS:
            if end.reason == "credentials-changed":
                self._ticket = None
            raise SubscriptionRevoked(
                f"the gateway ended the stream: {end.reason} ({end.message})", end.reason
            )
        if end.reason == "gap":
            missing = (chain.next_offset or 0, end.next_offset or 0)
            raise SequenceGap(f"the gateway reports a gap: {end.message}", missing)
        if end.reason == "replaced":
            raise StreamReplaced(
                f"another stream of {self._s.recipient} (client {self._s.client!r}) took over"
            )
        if end.location:
            raise _Redirect(end.location)
        raise _Transient(f"stream ended: {end.reason}")

    # -- reading -----------------------------------------------------------------------------
    async def _read(
        self,
        http: aiohttp.ClientSession,
        base: str,
        partition: int | None,
        start: int | None,
        queue: asyncio.Queue[StreamEvent | _Closed],
    ) -> None:
        try:
            if self._s.protocol == "sse":
                await self._read_sse(http, base, partition, start, queue)
            elif self._s.protocol == "ws":
                await self._read_ws(http, base, partition, start, queue)
            else:
                await self._read_poll(http, base, partition, start, queue)
            await queue.put(_Closed(_Transient("the gateway closed the stream")))
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, ConnectionError, OSError) as exc:
            await queue.put(_Closed(_Transient(f"connection to {base} failed: {exc}")))
        except StreamFormatError as exc:
            await queue.put(_Closed(_Transient(f"unreadable event from {base}: {exc}")))
        except BaseException as exc:
            await queue.put(_Closed(exc))

    async def _check(self, response: aiohttp.ClientResponse) -> None:
        if response.status == 200 or response.status == 101:
            return
        if response.status in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            if location:
                raise _Redirect(location)
        try:
            doc = orjson.loads(await response.read())
            message, reason = str(doc.get("error", "")), str(doc.get("reason", ""))
        except (orjson.JSONDecodeError, AttributeError, aiohttp.ClientError):
            message, reason = response.reason or "", response.headers.get(REASON_HEADER, "")
        self._refusal(response.status, message, reason, response.headers)

    def _refusal(self, status: int, message: str, reason: str, headers: Any) -> None:
        if status == 401 and reason == "ticket":
            raise _TicketRefused(message)
        if status == 403 and reason in REVOKED_REASONS:
            raise SubscriptionRevoked(f"the gateway refused the stream: {message}", reason)
        if status in (429, 502, 503, 504) or status >= 500:
            retry = headers.get("Retry-After") if headers is not None else None
            raise _Transient(
                f"gateway answered {status}: {message}",
                float(retry) if retry and retry.isdigit() else None,
            )
        raise GatewayRefused(f"gateway refused the stream ({status}): {message}", status, reason)

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, sock_connect=self._s.connect_timeout_s, sock_read=self._s.read_timeout_s
        )

    async def _read_sse(
        self,
        http: aiohttp.ClientSession,
        base: str,
        partition: int | None,
        start: int | None,
        queue: asyncio.Queue[StreamEvent | _Closed],
    ) -> None:
        url = self._url(base, partition, start)
        async with http.get(
            url, headers=self._headers(), allow_redirects=False, timeout=self._timeout()
        ) as response:
            await self._check(response)
            parser = SseParser()
            async for chunk in response.content.iter_any():
                for _, data in parser.feed(chunk):
                    event = decode_json_event(data)
                    await queue.put(event)
                    if isinstance(event, EndEvent):
                        return

    async def _read_ws(
        self,
        http: aiohttp.ClientSession,
        base: str,
        partition: int | None,
        start: int | None,
        queue: asyncio.Queue[StreamEvent | _Closed],
    ) -> None:
        url = self._url(base, partition, start)
        try:
            socket = await http.ws_connect(
                url,
                headers=self._headers(),
                autoping=True,
                heartbeat=None,
                max_msg_size=4 << 20,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            headers: Any = exc.headers or {}
            location = headers.get("Location")
            if exc.status in (301, 302, 307, 308) and location:
                raise _Redirect(location) from None
            # aiohttp follows a handshake's redirect itself but, rightly, without the
            # credentials on another origin: go there again, with them.
            for hop in reversed(exc.history):
                location = hop.headers.get("Location")
                if hop.status in (301, 302, 307, 308) and location:
                    raise _Redirect(str(hop.url.join(URL(location)))) from None
            reason = headers.get(REASON_HEADER, "")
            self._refusal(
                exc.status, exc.message or f"handshake refused ({reason})", reason, headers
            )
            raise
        async with socket:
            while True:
                message = await socket.receive(timeout=self._s.read_timeout_s)
                if message.type == aiohttp.WSMsgType.BINARY:
                    event: StreamEvent = decode_ws_binary(message.data)
                elif message.type == aiohttp.WSMsgType.TEXT:
                    event = decode_json_event(message.data)
                else:
                    return  # closed
                await queue.put(event)
                if isinstance(event, EndEvent):
                    return

    async def _read_poll(
        self,
        http: aiohttp.ClientSession,
        base: str,
        partition: int | None,
        start: int | None,
        queue: asyncio.Queue[StreamEvent | _Closed],
    ) -> None:
        wait = self._s.poll_wait_s
        timeout = aiohttp.ClientTimeout(
            total=wait + self._s.read_timeout_s, sock_connect=self._s.connect_timeout_s
        )
        extra: dict[str, Any] = {"wait": f"{wait:g}"}
        while True:
            url = self._url(base, partition, start, **extra)
            async with http.get(
                url, headers=self._headers(), allow_redirects=False, timeout=timeout
            ) as response:
                await self._check(response)
                body = await response.read()
            for line in body.splitlines():
                if not line.strip():
                    continue
                event = decode_json_event(line)
                if isinstance(event, WelcomeEvent):
                    partition = event.partition
                    if start is not None and event.next_offset != start:
                        raise StreamFormatError(
                            f"poll answered from {event.next_offset}, asked from {start}"
                        )
                    start = event.next_offset
                elif isinstance(event, FrameEvent):
                    start = event.offset + 1
                elif isinstance(event, PositionEvent):
                    start = max(start or 0, event.next_offset)
                await queue.put(event)
                if isinstance(event, EndEvent):
                    return

    # -- processing (in a worker thread: keys over HTTP, sink writes) ------------------------
    def _process(
        self, events: Sequence[StreamEvent], chain: StreamChain, sequence: FrameSequenceChecker
    ) -> EndEvent | None:
        records: list[DeliveredRecord] = []
        moved = False
        end: EndEvent | None = None
        good = chain.next_offset
        try:
            for event in events:
                if isinstance(event, FrameEvent):
                    if chain.frame(event):
                        records.extend(self._opener.open(event.frame, sequence))
                        moved = True
                    else:
                        self.duplicates_skipped += 1
                elif isinstance(event, PositionEvent):
                    moved = chain.position(event) or moved
                elif isinstance(event, WelcomeEvent):
                    chain.welcome(event)
                    if event.ticket:
                        self._ticket = event.ticket
                        self._ticket_expires_ms = event.ticket_expires_ms or 0
                else:
                    end = event
                    break
                good = chain.next_offset
        except SubscriberError as exc:
            # Keep what verified before the bad frame: the stored cursor then points at it,
            # and a rerun stops at the same frame with the same error.
            chain.next_offset = good
            if moved and records:
                self._store(records, chain, sequence, force=True)
            if isinstance(exc, KeyFetchError) and not isinstance(exc, WrongKey):
                # The hub's api is away (restarting) or not caught up: the stream resumes
                # from the stored cursor after the usual backoff, and the frame comes again.
                raise _Transient(f"key release: {exc}") from exc
            raise
        if moved:
            self._store(records, chain, sequence)
        return end

    def _store(
        self,
        records: list[DeliveredRecord],
        chain: StreamChain,
        sequence: FrameSequenceChecker,
        force: bool = False,
    ) -> None:
        if chain.partition is None or chain.next_offset is None:
            return
        now = time.monotonic()
        if records or force or now - self._last_cursor_write >= self._s.position_write_interval_s:
            self._write(records, Cursor(chain.partition, chain.next_offset, sequence.to_dict()))
            self._last_cursor_write = now
            self._account(records)

    def _write(self, records: list[DeliveredRecord], cursor: Cursor) -> None:
        while True:
            try:
                self._sink.write(records, cursor)
                return
            except Backpressure as exc:
                self.backpressure_waits += 1
                log.warning("sink busy (%s); retrying %d records", exc.reason, len(records))
                if self._halt.wait(max(0.0, exc.retry_after)):
                    raise _Transient("stopped while the sink was busy") from None

    def _account(self, records: list[DeliveredRecord]) -> None:
        if not records:
            return
        now = time.time()
        for record in records:
            latency = max(0.0, now - record.ingested_at_ms / 1000)
            metrics.SDK_E2E_LATENCY.observe(latency)
            self.recent_latencies_ms.append(latency * 1000)
        metrics.SDK_RECORDS.inc(len(records))
        self.records += len(records)


async def _put_on(stop: asyncio.Event, queue: asyncio.Queue[StreamEvent | _Closed]) -> None:
    await stop.wait()
    await queue.put(_Closed(None))
