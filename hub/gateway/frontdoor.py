"""The gateway's listening socket: long-polls take a lean path, everything else aiohttp's.

A long-poll subscriber sends one request per answer: for a community's stream, about one
request per frame. Through aiohttp each of those requests cost the event loop ~160 µs (a
request object, routing, a task, a response object and its headers), which made the
long-polling fifth of the streams two fifths of the loop's work in a backlog. Here a
long-poll is parsed and answered with the same logic (:meth:`StreamEndpoints.poll_body`)
but without that machinery.

* :class:`FrontDoor` is each accepted connection's protocol until its first request line
  is in: ``GET /v1/stream/poll`` makes it a :class:`PollConnection`; anything else goes to
  aiohttp's own connection handler with the bytes read so far.
* :class:`PollConnection` answers plain long-polls (``GET``, no body, a well-formed head)
  one at a time and in order (pipelined requests wait their turn), keeping the connection
  alive as HTTP/1.1 or 1.0 says. Any other request — another path or method, a body, a
  head it does not parse — hands the connection to aiohttp between two requests, so a
  client may mix requests on one connection and aiohttp answers what is not a long-poll.
* :class:`Doorkeeper` holds the connections of both kinds: it closes those idle past the
  keep-alive time (and connections that never send a request line), and closes them all
  when the gateway stops.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import orjson
from aiohttp import web
from multidict import CIMultiDict, MultiDict

from hub import metrics
from hub.gateway.http import POLL_CONTENT_TYPE, StreamEndpoints
from hub.gateway.wire import STREAM_PATHS

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024  # a request head larger than this is refused (431)
MAX_PENDING_BYTES = 64 * 1024  # pipelined bytes read ahead before reading pauses
KEEPALIVE_S = 75.0  # as aiohttp's default: idle connections are closed after this
_POLL_PATH = STREAM_PATHS["poll"]
_POLL_LINE = f"GET {_POLL_PATH}".encode()
_POLL_LEAN = metrics.GATEWAY_POLL_REQUESTS.labels("lean")


class PollRequest:
    """A long-poll request as :meth:`StreamEndpoints.open` reads it."""

    __slots__ = ("headers", "path", "query", "remote", "transport")

    def __init__(
        self,
        query: MultiDict[str],
        headers: CIMultiDict[str],
        remote: str | None,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        self.path = _POLL_PATH
        self.query = query
        self.headers = headers
        self.remote = remote
        self.transport = transport


def parse_poll_head(head: bytes) -> tuple[MultiDict[str], CIMultiDict[str], bool, bool] | None:
    """A request head (without its blank line) as ``(query, headers, keep_alive, http10)``
    when it is a plain long-poll; ``None`` for anything else, which aiohttp then answers."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if method != "GET" or version not in ("HTTP/1.1", "HTTP/1.0"):
        return None
    path, _, query_text = target.partition("?")
    if path != _POLL_PATH or "#" in query_text:
        return None
    http10 = version == "HTTP/1.0"
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if (
            not colon
            or not name
            or name[0] in " \t"  # folded (obsolete) or malformed header lines
            or name[-1] in " \t"
            or "\n" in line
            or "\r" in line
        ):
            return None
        headers.add(name, value.strip(" \t"))
    if (
        (not http10 and len(headers.getall("Host", ())) != 1)  # RFC 9112, 3.2
        or headers.get("Content-Length", "0").strip() != "0"
        or "Transfer-Encoding" in headers
        or "Upgrade" in headers
        or "Expect" in headers
    ):
        return None
    connection = headers.get("Connection", "").lower()
    keep_alive = "keep-alive" in connection if http10 else "close" not in connection
    query: MultiDict[str] = MultiDict()
    if query_text:
        for pair in query_text.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            if "%" in pair or "+" in pair:
                name, value = unquote_plus(name), unquote_plus(value)
            query.add(name, value)
    return query, headers, keep_alive, http10


class _HttpDate:
    """The ``Date`` header's value, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = email.utils.formatdate(second, usegmt=True)
        return self._value


_date = _HttpDate()


def response_bytes(
    status: int,
    reason: str,
    headers: list[tuple[str, str]],
    body: bytes,
    keep_alive: bool,
    http10: bool,
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", f"Date: {_date()}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _exception_response(exc: web.HTTPException) -> tuple[int, str, list[tuple[str, str]], bytes]:
    headers = [
        (name, value)
        for name, value in exc.headers.items()
        if name.lower() not in ("content-length", "connection", "date")
    ]
    body = exc.body if isinstance(exc.body, bytes) else (exc.text or "").encode()
    return exc.status, exc.reason, headers, body


def _remote(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (list, tuple)) and peer:
        return str(peer[0])
    return str(peer) if peer else None


def _hand_over(transport: Any, protocol: asyncio.Protocol, data: bytes) -> None:
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if data:
        protocol.data_received(data)


class Doorkeeper:
    """The gateway's connections until aiohttp takes them, and its long-poll connections."""

    def __init__(
        self, endpoints: StreamEndpoints, aiohttp_factory: Callable[[], asyncio.Protocol]
    ) -> None:
        self.endpoints = endpoints
        self.aiohttp_factory = aiohttp_factory
        self.connections: dict[FrontDoor | PollConnection, float] = {}
        self.keepalive_s = KEEPALIVE_S

    def protocol(self) -> FrontDoor:
        """The protocol factory for ``loop.create_server``."""
        return FrontDoor(self)

    def idle(self, connection: FrontDoor | PollConnection) -> None:
        self.connections[connection] = time.monotonic()

    def busy(self, connection: FrontDoor | PollConnection) -> None:
        self.connections[connection] = float("inf")

    def gone(self, connection: FrontDoor | PollConnection) -> None:
        self.connections.pop(connection, None)

    def sweep(self) -> None:
        """Close connections idle past the keep-alive time (no request in progress)."""
        limit = time.monotonic() - self.keepalive_s
        for connection, since in list(self.connections.items()):
            if since < limit:
                connection.close()

    def close_all(self) -> None:
        for connection in list(self.connections):
            connection.close()


class FrontDoor(asyncio.Protocol):
    """A new connection, until its first request line says who answers it."""

    __slots__ = ("_buffer", "_keeper", "_transport")

    def __init__(self, keeper: Doorkeeper) -> None:
        self._keeper = keeper
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._keeper.idle(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        if b"\r\n" not in buffer and len(buffer) < MAX_HEAD_BYTES:
            self._buffer = buffer
            return
        self._buffer = b""
        keeper = self._keeper
        keeper.gone(self)
        protocol: asyncio.Protocol
        if buffer.startswith(_POLL_LINE) and buffer[len(_POLL_LINE) : len(_POLL_LINE) + 1] in (
            b"?",
            b" ",
        ):
            protocol = PollConnection(keeper)
        else:
            protocol = keeper.aiohttp_factory()
        _hand_over(self._transport, protocol, buffer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._keeper.gone(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class PollConnection(asyncio.Protocol):
    """A connection whose requests are long-polls, answered without aiohttp."""

    def __init__(self, keeper: Doorkeeper) -> None:
        self._keeper = keeper
        self._transport: asyncio.Transport | None = None
        self._remote: str | None = None
        self._buffer = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._closed = False

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._remote = _remote(transport)
        self._keeper.idle(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is None:
            self._next()
        elif len(self._buffer) > MAX_PENDING_BYTES and not self._read_paused:
            self._read_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._keeper.gone(self)
        if self._task is not None:
            # As aiohttp's handler cancellation: the poll stops waiting, and its stream
            # lingers for the client's return (``poll_linger_s``).
            self._task.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._task is None:
            self._next()

    # -- requests --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()

    def _next(self) -> None:
        """Start answering the next complete request in the buffer, if any."""
        if self._closed or self._write_paused or self._task is not None:
            return
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                self._refuse(431, "Request Header Fields Too Large", "request head too large")
            return
        parsed = parse_poll_head(bytes(buffer[:end]))
        if parsed is None:
            self._give_to_aiohttp()
            return
        del buffer[: end + 4]
        if self._read_paused and len(buffer) <= MAX_PENDING_BYTES // 2:
            self._read_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        query, headers, keep_alive, http10 = parsed
        request = PollRequest(query, headers, self._remote, self._transport)
        self._keeper.busy(self)
        _POLL_LEAN.inc()
        self._task = asyncio.get_running_loop().create_task(
            self._answer(request, keep_alive, http10)
        )

    async def _answer(self, request: PollRequest, keep_alive: bool, http10: bool) -> None:
        try:
            body = await self._keeper.endpoints.poll_body(request)
            data = response_bytes(
                200,
                "OK",
                [("Content-Type", POLL_CONTENT_TYPE)],
                body,
                keep_alive,
                http10,
            )
        except web.HTTPException as exc:
            status, reason, headers, body = _exception_response(exc)
            data = response_bytes(status, reason, headers, body, keep_alive, http10)
        except Exception:
            log.exception("long-poll failed")
            keep_alive = False
            body = orjson.dumps({"error": "internal error", "reason": "internal"})
            data = response_bytes(
                500,
                "Internal Server Error",
                [("Content-Type", "application/json")],
                body,
                keep_alive,
                http10,
            )
        self._task = None
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            return
        transport.write(data)
        if not keep_alive:
            self.close()
            return
        self._keeper.idle(self)
        if self._buffer:
            self._next()

    def _refuse(self, status: int, reason: str, message: str) -> None:
        body = orjson.dumps({"error": message, "reason": "bad-request"})
        assert self._transport is not None
        self._transport.write(
            response_bytes(
                status, reason, [("Content-Type", "application/json")], body, False, False
            )
        )
        self.close()

    def _give_to_aiohttp(self) -> None:
        """Between two requests: aiohttp answers this connection from here on."""
        keeper = self._keeper
        keeper.gone(self)
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._read_paused:
            self._read_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        _hand_over(self._transport, keeper.aiohttp_factory(), data)
