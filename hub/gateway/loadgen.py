"""Simulated subscribers for load tests: thousands of lean stream clients in one process.

Each client speaks one of the three stream protocols over a raw asyncio connection (no
HTTP library: the point is to load the gateway, not the simulator), resumes from its own
cursor when a stream ends, and checks that every frame it receives is addressed to it.
Frames are not decrypted — the gateway never sees plaintext either — so what is measured is
the gateway's delivery.

Run as ``python -m hub.gateway.loadgen --url URL --subscribers FILE`` where FILE holds JSON
``[{"party": ..., "credential": ..., "protocol": "sse"|"ws"|"poll"}, ...]``. The process
prints a JSON status line every second on stdout and answers commands on stdin:

* ``dump PATH`` — write every frame received so far (receive time, partition, offset,
  entries) to PATH as JSON and print ``{"dumped": PATH}``;
* ``stop`` — close every stream and exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import struct
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from hub.gateway.wire import STREAM_PATHS, SseParser, frame_route

_WS_FRAME = struct.Struct(">cqqIq")


@dataclass
class Tally:
    """What all clients received, as flat arrays (cheap for hundreds of thousands)."""

    times: array[float] = field(default_factory=lambda: array("d"))
    partitions: array[int] = field(default_factory=lambda: array("i"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    entries: array[int] = field(default_factory=lambda: array("i"))
    total_entries: int = 0
    misaddressed: int = 0
    connected: int = 0
    welcomed: int = 0
    reconnects: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ends: list[tuple[str, str, float]] = field(default_factory=list)

    def frame(self, partition: int, offset: int, entries: int) -> None:
        self.times.append(time.time())
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


class Client:
    """One subscriber: connects, reads its stream, reconnects from its cursor."""

    def __init__(
        self, host: str, port: int, party: str, credential: str, protocol: str, tally: Tally
    ) -> None:
        self.host = host
        self.port = port
        self.party = party
        self.credential = credential
        self.protocol = protocol
        self.tally = tally
        self.cursor: str | None = None
        self.partition = -1
        self.next_offset = 0
        self.final = False
        self.welcomed = False

    async def run(self) -> None:
        while not self.final:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
            except OSError:
                self.tally.error("connect")
                await asyncio.sleep(0.5)
                continue
            self.tally.connected += 1
            try:
                if self.protocol == "sse":
                    await self._sse(reader, writer)
                elif self.protocol == "ws":
                    await self._ws(reader, writer)
                else:
                    await self._poll(reader, writer)
            except (OSError, asyncio.IncompleteReadError, StreamClosed, ValueError) as exc:
                self.tally.error(type(exc).__name__)
            finally:
                self.tally.connected -= 1
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if not self.final:
                self.tally.reconnects += 1
                await asyncio.sleep(0.2)

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

    async def _head(self, reader: asyncio.StreamReader, expect: int) -> dict[str, str]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if status != expect:
            if status in (401, 403, 409, 400):
                self.final = status != 401
                self.tally.ends.append((self.party, f"http-{status}", time.time()))
            raise StreamClosed(f"status {status}")
        return headers

    def _event(self, doc: dict[str, Any]) -> None:
        kind = doc.get("type")
        if kind == "frame":
            frame = base64.b64decode(doc["frame"])
            self._frame(doc["offset"], doc["entries"], frame)
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

    def _frame(self, offset: int, entries: int, frame: bytes) -> None:
        if frame_route(frame).recipient != self.party:
            self.tally.misaddressed += 1
        if offset >= self.next_offset:
            self.next_offset = offset + 1
            self.tally.frame(self.partition, offset, entries)

    async def _sse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self._request(f"{STREAM_PATHS['sse']}?{self._query()}"))
        headers = await self._head(reader, 200)
        if headers.get("transfer-encoding") != "chunked":
            raise StreamClosed("expected a chunked stream")
        parser = SseParser()
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                raise StreamClosed("stream ended")
            chunk = (await reader.readexactly(size + 2))[:-2]
            for _, data in parser.feed(chunk):
                self._event(orjson.loads(data))

    async def _ws(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            self._request(
                f"{STREAM_PATHS['ws']}?{self._query()}",
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            )
        )
        await self._head(reader, 101)
        while True:
            head = await reader.readexactly(2)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", await reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(length)
            if opcode == 2:
                _, _after, offset, entries, _ts = _WS_FRAME.unpack_from(payload, 0)
                self._frame(offset, entries, payload[_WS_FRAME.size :])
            elif opcode == 1:
                self._event(orjson.loads(payload))
            elif opcode == 9:  # ping: answer with a masked pong
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                writer.write(bytes((0x8A, 0x80 | len(payload))) + mask + masked)
            elif opcode == 8:
                raise StreamClosed("closed by the gateway")

    async def _poll(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(self._request(f"{STREAM_PATHS['poll']}?{self._query(wait='20')}"))
            headers = await self._head(reader, 200)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            for line in body.splitlines():
                if line.strip():
                    self._event(orjson.loads(line))


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
                "partitions": tally.partitions.tolist(),
                "offsets": tally.offsets.tolist(),
                "entries": tally.entries.tolist(),
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
