"""Simulated subscribers for load tests: thousands of lean stream clients in one process.

Each client speaks one of the three stream protocols over a raw non-blocking socket (no
HTTP library: the point is to load the gateway, not the simulator), resumes from its own
cursor when a stream ends, and checks that every frame it receives is addressed to it.
Frames are not decrypted — the gateway never sees plaintext either — so what is measured is
the gateway's delivery.

A frame's receive time is when its bytes reached the subscriber's socket: the kernel's
receive timestamp of the read that completed it (``SO_TIMESTAMPNS``), not when this
process got round to parsing it. Ten thousand subscribers share one Python process here;
a burst of a thousand frames is parsed one after another, and stamping after parsing
would charge the last subscriber of a burst for parsing the other 999 frames — a delay no
real subscriber, each on its own machine, has. The parse time is kept too
(``parsed``), so the simulator's own queueing is visible.

Run as ``python -m hub.gateway.loadgen --url URL --subscribers FILE`` where FILE holds JSON
``[{"party": ..., "credential": ..., "protocol": "sse"|"ws"|"poll"}, ...]``. The process
prints a JSON status line every second on stdout and answers commands on stdin:

* ``dump PATH`` — write every frame received so far (receive time, parse time, partition,
  offset, entries, protocol) to PATH as JSON and print ``{"dumped": PATH}``;
* ``stop`` — close every stream and exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import socket
import struct
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from hub.gateway.wire import STREAM_PATHS, SseParser

_WS_FRAME = struct.Struct(">cqqIq")
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; absent from the module
_TIMESPEC = struct.Struct("qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_SIZE = 1 << 18
_RECIPIENT_AT = 42  # the recipient's u16 length in a frame's clear header
PROTOCOLS = ("sse", "ws", "poll")


@dataclass
class Tally:
    """What all clients received, as flat arrays (cheap for hundreds of thousands)."""

    times: array[float] = field(default_factory=lambda: array("d"))
    parsed: array[float] = field(default_factory=lambda: array("d"))
    partitions: array[int] = field(default_factory=lambda: array("i"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    entries: array[int] = field(default_factory=lambda: array("i"))
    protocols: array[int] = field(default_factory=lambda: array("b"))
    total_entries: int = 0
    misaddressed: int = 0
    connected: int = 0
    welcomed: int = 0
    reconnects: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ends: list[tuple[str, str, float]] = field(default_factory=list)

    def frame(
        self, partition: int, offset: int, entries: int, received: float, protocol: int = 0
    ) -> None:
        self.times.append(received)
        self.protocols.append(protocol)
        self.parsed.append(time.time())
        self.partitions.append(partition)
        self.offsets.append(offset)
        self.entries.append(entries)
        self.total_entries += entries

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "welcomed": self.welcomed,
            "frames": len(self.offsets),
            "entries": self.total_entries,
            "misaddressed": self.misaddressed,
            "reconnects": self.reconnects,
            "errors": self.errors,
            "ends": len(self.ends),
        }


class StreamClosed(Exception):
    pass


def frame_recipient(frame: bytes) -> bytes:
    """The recipient bytes of a frame's clear header (empty when it has none)."""
    if len(frame) < _RECIPIENT_AT + 2 or frame[:4] != b"GHDF":
        return b""
    length = (frame[_RECIPIENT_AT] << 8) | frame[_RECIPIENT_AT + 1]
    return frame[_RECIPIENT_AT + 2 : _RECIPIENT_AT + 2 + length]


def receive_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive timestamp of a read (now, when the kernel gave none)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return time.time()


class HttpHead:
    """Collects an HTTP response head; returns the bytes after it once complete."""

    def __init__(self) -> None:
        self._buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}

    def feed(self, data: bytes) -> bytes | None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > 65_536:
                raise ValueError("response head too large")
            return None
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                self.headers[name.strip().lower()] = value.strip()
        return self._buffer[end + 4 :]


class ChunkedBody:
    """HTTP/1.1 chunked transfer decoding, chunk by chunk."""

    def __init__(self) -> None:
        self._buffer = b""
        self.ended = False

    def feed(self, data: bytes) -> list[bytes]:
        """Complete chunks so far; ``ended`` turns true at the last (empty) chunk."""
        buffer = self._buffer + data if self._buffer else data
        out = []
        pos = 0
        while not self.ended:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(buffer[pos:line_end].split(b";")[0], 16)
            if size == 0:
                self.ended = True
                break
            start = line_end + 2
            if len(buffer) < start + size + 2:
                break
            out.append(buffer[start : start + size])
            pos = start + size + 2
        self._buffer = buffer[pos:]
        return out


class WsFrames:
    """Unmasked server-to-client WebSocket frames: (opcode, payload)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        out = []
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            opcode, length = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + length:
                break
            out.append((opcode, buffer[pos + head : pos + head + length]))
            pos += head + length
        self._buffer = buffer[pos:]
        return out


class Client:
    """One subscriber: connects, reads its stream, reconnects from its cursor."""

    def __init__(
        self, host: str, port: int, party: str, credential: str, protocol: str, tally: Tally
    ) -> None:
        self.host = host
        self.port = port
        self.party = party
        self.party_bytes = party.encode()
        self.credential = credential
        self.protocol = protocol
        self.protocol_code = PROTOCOLS.index(protocol) if protocol in PROTOCOLS else 0
        self.tally = tally
        self.partition = -1
        self.next_offset = 0
        self.final = False
        self.welcomed = False
        self._sock: socket.socket | None = None
        self._done: asyncio.Future[BaseException | None] | None = None
        self._feed: Callable[[bytes, float], None] = self._ignore

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.final:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            try:
                await loop.sock_connect(sock, (self.host, self.port))
            except OSError:
                sock.close()
                self.tally.error("connect")
                await asyncio.sleep(0.5)
                continue
            self.tally.connected += 1
            self._sock = sock
            self._done = loop.create_future()
            self._start()
            loop.add_reader(sock.fileno(), self._readable)
            try:
                outcome = await self._done
                if outcome is not None:
                    self.tally.error(type(outcome).__name__)
            finally:
                self.tally.connected -= 1
                loop.remove_reader(sock.fileno())
                sock.close()
                self._sock = None
            if not self.final:
                self.tally.reconnects += 1
                await asyncio.sleep(0.2)

    # -- socket ----------------------------------------------------------------------------
    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(_READ_SIZE, _ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(exc)
            return
        if not data:
            self._close(StreamClosed("closed by the gateway"))
            return
        try:
            self._feed(data, receive_time(ancillary))
        except Exception as exc:  # any malformed input ends this stream, not the simulator
            self._close(exc)

    def _close(self, outcome: BaseException | None) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(outcome)
        self._feed = self._ignore

    def _ignore(self, data: bytes, received: float) -> None:
        pass

    def _send(self, data: bytes) -> None:
        """Requests and pongs are small: the socket takes them whole or the stream is
        dropped (and resumed)."""
        assert self._sock is not None
        if self._sock.send(data) != len(data):
            raise StreamClosed("request not sent whole")

    def _query(self, **extra: str) -> str:
        query = dict(extra)
        if self.partition >= 0:
            query["cursor"] = f"{self.partition}:{self.next_offset}"
        return urlencode(query)

    def _request(self, path: str, extra_headers: str = "") -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.credential}\r\n{extra_headers}\r\n"
        ).encode()

    def _check(self, head: HttpHead, expect: int) -> None:
        if head.status != expect:
            if head.status in (401, 403, 409, 400):
                self.final = head.status != 401
                self.tally.ends.append((self.party, f"http-{head.status}", time.time()))
            raise StreamClosed(f"status {head.status}")

    # -- events ----------------------------------------------------------------------------
    def _event(self, doc: dict[str, Any], received: float) -> None:
        kind = doc.get("type")
        if kind == "frame":
            # Only the clear header is looked at: decode just enough of the base64.
            need = _RECIPIENT_AT + 2 + len(self.party_bytes)
            head = base64.b64decode(doc["frame"][: (need + 2) // 3 * 4])
            self._frame(doc["offset"], doc["entries"], head, received)
        elif kind == "position":
            self.next_offset = max(self.next_offset, doc["next"])
        elif kind == "welcome":
            self.partition = doc["partition"]
            self.next_offset = doc["next"]
            if not self.welcomed:
                self.welcomed = True
                self.tally.welcomed += 1
            if doc.get("ticket"):
                self.credential = doc["ticket"]
        elif kind == "end":
            self.tally.ends.append((self.party, str(doc.get("reason")), time.time()))
            if doc.get("next") is not None:
                self.next_offset = doc["next"]
            if doc.get("reason") in ("revoked", "suspended", "expired", "party-suspended"):
                self.final = True
            raise StreamClosed(str(doc.get("reason")))

    def _frame(self, offset: int, entries: int, frame: bytes, received: float) -> None:
        if frame_recipient(frame) != self.party_bytes:
            self.tally.misaddressed += 1
        if offset >= self.next_offset:
            self.next_offset = offset + 1
            self.tally.frame(self.partition, offset, entries, received, self.protocol_code)

    # -- protocols -------------------------------------------------------------------------
    def _start(self) -> None:
        if self.protocol == "sse":
            self._start_sse()
        elif self.protocol == "ws":
            self._start_ws()
        else:
            self._start_poll()

    def _start_sse(self) -> None:
        head = HttpHead()
        chunks = ChunkedBody()
        events = SseParser()

        def body(data: bytes, received: float) -> None:
            for chunk in chunks.feed(data):
                for _, event in events.feed(chunk):
                    self._event(orjson.loads(event), received)
            if chunks.ended:
                raise StreamClosed("stream ended")

        def opening(data: bytes, received: float) -> None:
            rest = head.feed(data)
            if rest is None:
                return
            self._check(head, 200)
            if head.headers.get("transfer-encoding") != "chunked":
                raise StreamClosed("expected a chunked stream")
            self._feed = body
            if rest:
                body(rest, received)

        self._feed = opening
        self._send(self._request(f"{STREAM_PATHS['sse']}?{self._query()}"))

    def _start_ws(self) -> None:
        head = HttpHead()
        frames = WsFrames()

        def body(data: bytes, received: float) -> None:
            for opcode, payload in frames.feed(data):
                if opcode == 2:
                    _, _after, offset, entries, _ts = _WS_FRAME.unpack_from(payload, 0)
                    self._frame(offset, entries, payload[_WS_FRAME.size :], received)
                elif opcode == 1:
                    self._event(orjson.loads(payload), received)
                elif opcode == 9:  # ping: answer with a masked pong
                    mask = os.urandom(4)
                    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                    self._send(bytes((0x8A, 0x80 | len(payload))) + mask + masked)
                elif opcode == 8:
                    raise StreamClosed("closed by the gateway")

        def opening(data: bytes, received: float) -> None:
            rest = head.feed(data)
            if rest is None:
                return
            self._check(head, 101)
            self._feed = body
            if rest:
                body(rest, received)

        key = base64.b64encode(os.urandom(16)).decode()
        self._feed = opening
        self._send(
            self._request(
                f"{STREAM_PATHS['ws']}?{self._query()}",
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            )
        )

    def _start_poll(self) -> None:
        """One poll after another on the same connection; a response's frames count as
        received when its last byte arrived."""
        head = HttpHead()
        body = bytearray()
        length = -1

        def feed(data: bytes, received: float) -> None:
            nonlocal head, length
            while data:
                if length < 0:
                    rest = head.feed(data)
                    if rest is None:
                        return
                    self._check(head, 200)
                    length = int(head.headers.get("content-length", "0"))
                    data = rest
                take = length - len(body)
                body.extend(data[:take])
                data = data[take:]
                if len(body) < length:
                    return
                lines = bytes(body).splitlines()
                body.clear()
                head, length = HttpHead(), -1
                for line in lines:
                    if line.strip():
                        self._event(orjson.loads(line), received)
                poll()

        def poll() -> None:
            self._send(self._request(f"{STREAM_PATHS['poll']}?{self._query(wait='20')}"))

        self._feed = feed
        poll()


async def main(url: str, subscribers: list[dict[str, str]], ramp_per_s: float) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    loop = asyncio.get_running_loop()
    clients = [
        Client(host, port, s["party"], s["credential"], s["protocol"], tally) for s in subscribers
    ]
    tasks: list[asyncio.Task[None]] = []

    async def ramp() -> None:
        pause = 1.0 / ramp_per_s
        for client in clients:
            tasks.append(loop.create_task(client.run()))
            await asyncio.sleep(pause)

    async def report() -> None:
        while True:
            print(orjson.dumps(tally.status()).decode(), flush=True)
            await asyncio.sleep(1.0)

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    ramping = loop.create_task(ramp())
    reporting = loop.create_task(report())
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "stop":
            break
        command, _, arg = line.partition(" ")
        if command == "dump":
            doc = {
                "times": tally.times.tolist(),
                "parsed": tally.parsed.tolist(),
                "partitions": tally.partitions.tolist(),
                "offsets": tally.offsets.tolist(),
                "entries": tally.entries.tolist(),
                "protocols": [PROTOCOLS[code] for code in tally.protocols],
                **tally.status(),
                "end_events": tally.ends,
            }
            with open(arg, "wb") as f:
                f.write(orjson.dumps(doc))
            print(orjson.dumps({"dumped": arg}).decode(), flush=True)
    ramping.cancel()
    reporting.cancel()
    for client in clients:
        client.final = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hub.gateway.loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--subscribers", required=True)
    parser.add_argument("--ramp", type=float, default=2000.0, help="new connections per second")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(args.subscribers, "rb") as f:
        subscribers = orjson.loads(f.read())
    asyncio.run(main(args.url, subscribers, args.ramp))


if __name__ == "__main__":
    cli()
