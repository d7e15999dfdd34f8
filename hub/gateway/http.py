"""The gateway's HTTP surface: three stream protocols over one session model.

* ``GET /v1/stream/sse`` — Server-Sent Events (``Last-Event-ID`` works as the cursor);
* ``GET /v1/stream/ws`` — WebSocket: frames as binary messages, the rest as JSON text;
* ``GET /v1/stream/poll`` — NDJSON long-poll: one response per poll, the stream session
  lingers between polls so nothing is re-read while the subscriber is away briefly.

Each takes ``cursor=<partition>:<offset>`` (none: from the earliest retained frame) and an
optional ``client=<name>`` (one stream per party and client name; a newer one replaces
an older one). Authentication: ``Authorization: Bearer <token>``, a resume ticket from an
earlier ``welcome``, or a client certificate when the gateway terminates mTLS.

Errors are JSON ``{"error": ..., "reason": ...}``: 401 (credentials), 403 (no active
subscription, suspended party — ``reason`` says which), 409 (cursor of another partition),
400 (malformed cursor or beyond the partition's end), 503 (gateway full). A subscriber
whose partition another gateway owns gets ``307`` to that gateway.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import re
import socket as pysocket
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson
from aiohttp import WSMsgType, web

from hub import metrics
from hub.api.auth import AuthError
from hub.api.security import RateLimiter
from hub.audit.events import claimed_party, control_event
from hub.gateway.service import GatewayError, GatewayService
from hub.gateway.session import DeliveryFrame, Session
from hub.gateway.tickets import TICKET_PREFIX, TicketError, token_fingerprint
from hub.gateway.wire import (
    REASON_HEADER,
    STREAM_PATHS,
    EndEvent,
    FrameEvent,
    InvalidCursor,
    PositionEvent,
    StreamProtocol,
    WelcomeEvent,
    format_cursor,
    frame_json,
    parse_cursor,
    sse_event,
    sse_frame_event,
    ws_frame_message,
    ws_frame_payload,
)
from hub.parties.model import Party

log = logging.getLogger(__name__)

SERVICE_KEY: web.AppKey[GatewayService] = web.AppKey("gateway", GatewayService)
MAX_SEND_BYTES = 512 * 1024
POLL_CONTENT_TYPE = "application/x-ndjson"
DIRECT_LIMIT = 64 * 1024  # bytes waiting in a socket's buffer before the direct path yields
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SSE_HEARTBEAT = b": keep-alive\n\n"


def _error(status: int, message: str, reason: str, headers: dict[str, str] | None = None) -> Any:
    cls = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        409: web.HTTPConflict,
        429: web.HTTPTooManyRequests,
        503: web.HTTPServiceUnavailable,
    }[status]
    metrics.GATEWAY_CONNECTS.labels(reason).inc()
    # The reason also travels as a header: WebSocket clients see a refused handshake's
    # headers but not its body.
    return cls(
        text=orjson.dumps({"error": message, "reason": reason}).decode(),
        content_type="application/json",
        headers={**(headers or {}), REASON_HEADER: reason},
    )


class StreamRequest(Protocol):
    """What opening a stream reads of a request: an aiohttp request, or a long-poll parsed
    by the gateway's own connection handling (:mod:`hub.gateway.frontdoor`)."""

    @property
    def path(self) -> str: ...
    @property
    def query(self) -> Mapping[str, str]: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def transport(self) -> asyncio.BaseTransport | None: ...


def _certificate_subject(request: StreamRequest) -> str | None:
    transport = request.transport
    cert: Any = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
    parts = [
        f"{short.get(name, name)}={value}" for rdn in cert.get("subject", ()) for name, value in rdn
    ]
    return ",".join(parts) or None


class StreamEndpoints:
    def __init__(self, service: GatewayService) -> None:
        self.svc = service
        # Per address: 20 refused tokens or certificates at once, then one a second (as
        # the api). Refused resume tickets do not count: a client then signs in with its
        # token, and a whole office behind one address may do so at once.
        self.failed_sign_ins = RateLimiter(rate=1.0, burst=20)

    # -- authentication ------------------------------------------------------------------
    async def authenticate(self, request: StreamRequest) -> tuple[Party, str | None]:
        """The calling party and the token fingerprint its stream is bound to; a refused
        credential is audited (``sign-in.failed``, the claimed party, never the secret)."""
        address = request.remote or "unknown"
        wait = self.failed_sign_ins.wait_time(address)
        if wait > 0:
            # Before the slow hash: guessing tokens costs the guesser, not the hub.
            raise _error(
                429,
                "too many failed sign-ins from this address; retry later",
                "sign-in-limited",
                {"Retry-After": str(math.ceil(wait))},
            )
        try:
            return await self._authenticate(request)
        except web.HTTPUnauthorized as exc:
            if exc.headers.get(REASON_HEADER) != "ticket":
                self.failed_sign_ins.take(address)
            claimed = claimed_party(request.headers.get("Authorization"))
            self.svc.audit.write(
                control_event(
                    claimed or "anonymous",
                    "sign-in.failed",
                    target="gateway",
                    outcome="failed",
                    detail={
                        "remote": request.remote or "",
                        "reason": exc.headers.get(REASON_HEADER, ""),
                        "path": request.path,
                    },
                )
            )
            raise

    async def _authenticate(self, request: StreamRequest) -> tuple[Party, str | None]:
        svc = self.svc
        authorization = request.headers.get("Authorization")
        loop = asyncio.get_running_loop()
        if authorization:
            scheme, _, credential = authorization.partition(" ")
            credential = credential.strip()
            if scheme.lower() == "bearer" and credential.startswith(TICKET_PREFIX):
                try:
                    party_id, fingerprint = svc.tickets.verify(credential, int(time.time() * 1000))
                except TicketError as exc:
                    raise _error(401, str(exc), "ticket") from None
                party = svc.party(party_id)
                if party is None or token_fingerprint(party.token_hash) != fingerprint:
                    raise _error(401, "the ticket's credentials changed; use the token", "ticket")
                return party, fingerprint
            found = svc.authenticator.authenticate_cached(authorization)
            if found is None:
                try:
                    found = await loop.run_in_executor(
                        svc._auth_pool, svc.authenticator.authenticate, authorization
                    )
                except AuthError as exc:
                    raise _error(exc.status, str(exc), "unauthenticated") from None
            return found, token_fingerprint(found.token_hash)
        subject = _certificate_subject(request)
        if subject is None:
            raise _error(
                401, "missing bearer token (Authorization: Bearer <token>)", "unauthenticated"
            )
        try:
            party = await loop.run_in_executor(
                svc._auth_pool, svc.authenticator.authenticate_certificate, subject
            )
        except AuthError as exc:
            raise _error(exc.status, str(exc), "unauthenticated") from None
        return party, None

    # -- opening a stream ------------------------------------------------------------------
    async def open(
        self, request: StreamRequest, protocol: StreamProtocol
    ) -> tuple[Session, WelcomeEvent]:
        svc = self.svc
        if svc.stopping:
            raise _error(
                503, "this gateway is stopping; use another", "stopping", {"Retry-After": "1"}
            )
        party, fingerprint = await self.authenticate(request)
        access = svc.access_for(party)
        if not access.open:
            raise _error(403, access.denied_message, access.denied_reason or "revoked")
        partition = svc.partition_of(party.id)
        text = request.query.get("cursor") or request.headers.get("Last-Event-ID")
        start, from_earliest = 0, True
        if text:
            try:
                cursor = parse_cursor(text)
            except InvalidCursor as exc:
                raise _error(400, str(exc), "bad-cursor") from None
            if cursor.partition != partition:
                raise _error(
                    409,
                    f"cursor {text} is for partition {cursor.partition}, but {party.id} is "
                    f"delivered in partition {partition} (did the delivery topic's partition "
                    "count change?)",
                    "wrong-partition",
                )
            start, from_earliest = cursor.next_offset, False
        client = request.query.get("client", "default")
        if not _CLIENT_NAME.match(client):
            raise _error(400, "client must be 1-64 letters, digits, '.', '_' or '-'", "bad-client")
        if "redirected" not in request.query:
            target = svc.owner_url(partition)
            if target is not None:
                query = dict(request.query)
                query["redirected"] = "1"
                metrics.GATEWAY_CONNECTS.labels("redirected").inc()
                raise web.HTTPTemporaryRedirect(f"{target}{request.path}?{urlencode(query)}")
        if len(svc.sessions) >= svc.gw.max_subscribers:
            raise _error(
                503,
                f"this gateway holds {len(svc.sessions)} streams, its limit; retry shortly",
                "full",
                {"Retry-After": "5"},
            )
        tail = svc.fanout.tails.get(partition)
        if tail is not None and tail.position is not None and start > tail.position:
            try:
                high = await asyncio.get_running_loop().run_in_executor(
                    None, svc.high_watermark, partition
                )
            except GatewayError as exc:
                raise _error(503, str(exc), "kafka") from None
            if start > high:
                raise _error(
                    400,
                    f"cursor {text} is beyond the end of partition {partition} ({high})",
                    "bad-cursor",
                )
        session = svc.open_session(
            party, access, partition, protocol, start, from_earliest, client, fingerprint
        )
        now_ms = int(time.time() * 1000)
        expires = now_ms + svc.gw.ticket_ttl_s * 1000
        if party.token_expires_at_ms is not None:
            expires = min(expires, party.token_expires_at_ms)
        ticket = (
            svc.tickets.issue(party.id, party.token_hash, expires)
            if fingerprint is not None
            else None
        )
        welcome = WelcomeEvent(
            party.id,
            partition,
            start,
            svc.instance,
            ticket,
            expires if ticket else None,
            svc.gw.heartbeat_s,
        )
        return session, welcome

    def _bound_socket(self, request: web.Request) -> None:
        """Cap the kernel's send buffer: left to autotuning it grows to megabytes for a
        connection that stops reading, outside every bound the gateway keeps."""
        size = self.svc.gw.socket_send_buffer_bytes
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if size and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_SNDBUF, size)

    def _direct_writer(
        self,
        session: Session,
        transport: asyncio.Transport,
        encode: Callable[[int, int, DeliveryFrame], bytes],
    ) -> Callable[[DeliveryFrame], bool]:
        """A writer the fan-out may call while the handler is parked: the frame goes to
        the socket in the same bytes the handler would write, with no task switch. The
        frames of one live batch are held and leave in one write when the batch ends
        (:meth:`FanOut.flush`): a district's stream gets dozens of frames per batch, and
        each write is a system call and a loopback or network packet. It declines (the
        frame is then queued) when the socket is backed up."""
        sent = self.svc.sent
        fanout = self.svc.fanout
        partition = session.partition
        held: list[bytes] = []
        latencies: list[float] = []
        held_bytes = 0
        records = 0
        room = 0

        def write() -> None:
            nonlocal held_bytes, records
            data = held[0] if len(held) == 1 else b"".join(held)
            sent.add(session.tier, session.protocol, len(held), held_bytes, records, latencies)
            held.clear()
            latencies.clear()
            held_bytes = records = 0
            session.last_sent = time.monotonic()
            if not transport.is_closing():
                transport.write(data)

        def direct(frame: DeliveryFrame) -> bool:
            nonlocal held_bytes, records, room
            if not held:
                # Nothing reaches the socket until the batch ends: its state is looked at
                # once per batch, not per frame.
                if transport.is_closing():
                    return False
                room = DIRECT_LIMIT - transport.get_write_buffer_size()
            if held_bytes > room:
                return False
            data = encode(partition, session.told, frame)
            if not held:
                fanout.outbox.append(write)
            held.append(data)
            held_bytes += len(data)
            records += frame.entries
            latencies.append(max(0.0, time.time() - frame.timestamp_ms / 1000))
            session.told = frame.offset + 1
            return True

        return direct

    def _fill_end(self, session: Session, end: EndEvent) -> EndEvent:
        if end.next_offset is None:
            return EndEvent(end.reason, session.cursor(), end.message, end.location)
        return end

    def _count(self, session: Session, frames: list[FrameEvent], size: int) -> None:
        now_ms = time.time() * 1000
        self.svc.sent.add(
            session.tier,
            session.protocol,
            len(frames),
            size,
            sum(f.entries for f in frames),
            [max(0.0, (now_ms - f.timestamp_ms) / 1000) for f in frames],
        )
        if session.throttled_s:
            self.svc.report_throttling(session)

    async def _next(
        self, session: Session, timeout: float, position_interval_s: float
    ) -> list[FrameEvent] | PositionEvent | EndEvent | None:
        svc = self.svc
        return await session.pull(
            svc.pacer,
            # What one write takes out of the buffer counts against the stream's bound too.
            min(MAX_SEND_BYTES, session.limit_bytes // 4),
            timeout,
            position_interval_s,
            svc.fanout.resume,
        )

    # -- Server-Sent Events ----------------------------------------------------------------
    async def sse(self, request: web.Request) -> web.StreamResponse:
        session, welcome = await self.open(request, "sse")
        reason = "client-closed"
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            self._bound_socket(request)
            await response.prepare(request)
            transport = request.transport
            session.on_abort = transport.close if transport is not None else None
            await response.write(sse_event("welcome", orjson.dumps(welcome.to_json())))
            if transport is not None:
                # aiohttp chunks an HTTP/1.1 stream by itself (``response.chunked`` only
                # tells whether it was asked to): the header says what goes on the wire.
                chunked = response.headers.get("Transfer-Encoding", "").lower() == "chunked"
                encode = _sse_chunk if chunked else _sse_raw
                session.direct = self._direct_writer(session, transport, encode)
            reason = await self._pump_sse(session, response)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.svc.release(session, reason)
        return response

    async def _pump_sse(self, session: Session, response: web.StreamResponse) -> str:
        gw = self.svc.gw
        partition = session.partition
        while True:
            item = await self._next(session, gw.heartbeat_s, gw.position_interval_s)
            if item is None:
                await response.write(_SSE_HEARTBEAT)
            elif isinstance(item, list):
                chunks = [
                    sse_frame_event(
                        partition,
                        frame.after,
                        frame.offset,
                        frame.entries,
                        frame.timestamp_ms,
                        base64.b64encode(frame.frame),
                    )
                    for frame in item
                ]
                data = b"".join(chunks)
                await response.write(data)
                self._count(session, item, len(data))
            elif isinstance(item, PositionEvent):
                await response.write(
                    sse_event(
                        "position",
                        orjson.dumps(item.to_json()),
                        format_cursor(partition, item.next_offset),
                    )
                )
            else:
                end = self._fill_end(session, item)
                await response.write(sse_event("end", orjson.dumps(end.to_json())))
                return end.reason

    # -- WebSocket ---------------------------------------------------------------------------
    async def ws(self, request: web.Request) -> web.StreamResponse:
        session, welcome = await self.open(request, "ws")
        reason = "client-closed"
        # No per-message compression: frames are ciphertext, and the direct path writes
        # plain WebSocket frames.
        socket = web.WebSocketResponse(heartbeat=None, max_msg_size=65_536, compress=False)
        reader: asyncio.Task[None] | None = None
        try:
            self._bound_socket(request)
            await socket.prepare(request)
            transport = request.transport
            session.on_abort = transport.close if transport is not None else None
            reader = asyncio.create_task(self._ws_reader(socket, session))
            await socket.send_str(orjson.dumps(welcome.to_json()).decode())
            if transport is not None:
                session.direct = self._direct_writer(session, transport, _ws_binary)
            reason = await self._pump_ws(session, socket)
            await socket.close()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if reader is not None:
                reader.cancel()
            self.svc.release(session, reason)
        return socket

    async def _ws_reader(self, socket: web.WebSocketResponse, session: Session) -> None:
        async for message in socket:
            if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        if session.end is None and session.on_abort is not None:
            session.on_abort()

    async def _pump_ws(self, session: Session, socket: web.WebSocketResponse) -> str:
        gw = self.svc.gw
        while True:
            item = await self._next(session, gw.heartbeat_s, gw.position_interval_s)
            if socket.closed:
                return "client-closed"
            if item is None:
                await socket.ping()
            elif isinstance(item, list):
                size = 0
                for frame in item:
                    message = ws_frame_message(frame)
                    size += len(message)
                    await socket.send_bytes(message)
                self._count(session, item, size)
            elif isinstance(item, PositionEvent):
                await socket.send_str(orjson.dumps(item.to_json()).decode())
            else:
                end = self._fill_end(session, item)
                await socket.send_str(orjson.dumps(end.to_json()).decode())
                return end.reason

    # -- NDJSON long-poll --------------------------------------------------------------------
    async def poll(self, request: web.Request) -> web.StreamResponse:
        """A long-poll on a connection that began with another request (see
        :mod:`hub.gateway.frontdoor` for the others)."""
        metrics.GATEWAY_POLL_REQUESTS.labels("aiohttp").inc()
        return web.Response(body=await self.poll_body(request), content_type=POLL_CONTENT_TYPE)

    async def poll_body(self, request: StreamRequest) -> bytes:
        """One long-poll: the NDJSON body of the answer (refusals raise ``HTTPException``)."""
        svc = self.svc
        try:
            wait = min(float(request.query.get("wait", "20")), svc.gw.poll_wait_max_s)
            max_bytes = min(max(int(request.query.get("max_bytes", "1048576")), 65_536), 8 << 20)
        except ValueError:
            raise _error(400, "wait and max_bytes must be numbers", "bad-request") from None
        session, welcome = await self._poll_session(request)
        lines = [orjson.dumps(welcome.to_json())]
        svc.polling.add(session)
        try:
            item = await session.pull(
                svc.pacer,
                max_bytes,
                max(wait, 0.0),
                max(wait, 0.001),
                svc.fanout.resume,
            )
        finally:
            svc.polling.discard(session)
        size = 0
        if isinstance(item, list):
            for frame in item:
                line = frame_json(frame, _b64(frame.frame))
                size += len(line)
                lines.append(line)
            self._count(session, item, size)
            lines.append(orjson.dumps(PositionEvent(session.told).to_json()))
        elif isinstance(item, EndEvent):
            end = self._fill_end(session, item)
            lines.append(orjson.dumps(end.to_json()))
            svc.release(session, end.reason)
        else:
            position = item.next_offset if item is not None else session.told
            session.told = position
            lines.append(orjson.dumps(PositionEvent(position).to_json()))
        if not session.closed:
            svc.poll_expiry[session] = time.monotonic() + svc.gw.poll_linger_s
        return b"\n".join(lines) + b"\n"

    async def _poll_session(self, request: StreamRequest) -> tuple[Session, WelcomeEvent]:
        svc = self.svc
        party, fingerprint = await self.authenticate(request)
        client = request.query.get("client", "default")
        existing = svc.polls.get((party.id, client))
        text = request.query.get("cursor")
        if (
            existing is not None
            and not existing.closed
            and existing.end is None
            and existing not in svc.polling
            and text == format_cursor(existing.partition, existing.told)
            and existing.auth_fingerprint == fingerprint
        ):
            welcome = WelcomeEvent(
                party.id,
                existing.partition,
                existing.told,
                svc.instance,
                None,
                None,
                svc.gw.heartbeat_s,
            )
            return existing, welcome
        if existing is not None:
            svc.end(existing, EndEvent("replaced", None, "a newer poll of this client"))
            svc.release(existing, "replaced")
        session, welcome = await self.open(request, "poll")
        svc.polls[(party.id, client)] = session
        return session, welcome

    # -- health --------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.svc.readiness()
        if problems:
            return web.json_response({"status": "not ready", "reasons": problems}, status=503)
        return web.json_response({"status": "ready", **self.svc.stats()})

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        body, content_type = metrics.render_latest()
        return web.Response(body=body, headers={"Content-Type": content_type})


def _sse_chunk(partition: int, after: int, frame: DeliveryFrame) -> bytes:
    """A frame event as one HTTP/1.1 chunk of the SSE response (aiohttp streams it
    chunked; the handler's own writes are whole chunks too, so they interleave cleanly)."""
    data = _sse_raw(partition, after, frame)
    return b"%x\r\n%b\r\n" % (len(data), data)


def _sse_raw(partition: int, after: int, frame: DeliveryFrame) -> bytes:
    """A frame event on an unchunked SSE response (an HTTP/1.0 client)."""
    return sse_frame_event(
        partition, after, frame.offset, frame.entries, frame.timestamp_ms, frame.b64_ascii()
    )


def _ws_binary(partition: int, after: int, frame: DeliveryFrame) -> bytes:
    """A frame event as one unmasked, unfragmented binary WebSocket frame (RFC 6455)."""
    payload = ws_frame_payload(after, frame.offset, frame.entries, frame.timestamp_ms, frame.value)
    size = len(payload)
    if size < 126:
        head = bytes((0x82, size))
    elif size < 65_536:
        head = b"\x82\x7e" + size.to_bytes(2, "big")
    else:
        head = b"\x82\x7f" + size.to_bytes(8, "big")
    return head + payload


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


ENDPOINTS_KEY: web.AppKey[StreamEndpoints] = web.AppKey("endpoints", StreamEndpoints)


def build_gateway_app(service: GatewayService) -> web.Application:
    endpoints = StreamEndpoints(service)
    app = web.Application(client_max_size=65_536)
    app[SERVICE_KEY] = service
    app[ENDPOINTS_KEY] = endpoints
    app.router.add_get(STREAM_PATHS["sse"], endpoints.sse)
    app.router.add_get(STREAM_PATHS["ws"], endpoints.ws)
    app.router.add_get(STREAM_PATHS["poll"], endpoints.poll)
    app.router.add_get("/healthz", endpoints.healthz)
    app.router.add_get("/readyz", endpoints.readyz)
    app.router.add_get("/metrics", endpoints.metrics_endpoint)
    return app
