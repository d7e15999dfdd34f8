"""The gateway's front door: long-polls parsed and answered without aiohttp, everything
else handed to aiohttp — on a real loopback server, with a stand-in for the poll logic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import parse_qsl

import orjson
import pytest
from aiohttp import web

from hub import metrics
from hub.gateway.frontdoor import Doorkeeper, parse_poll_head, response_bytes
from hub.gateway.http import StreamRequest

# -- parsing ------------------------------------------------------------------------------------


def test_a_plain_long_poll_is_parsed() -> None:
    parsed = parse_poll_head(
        b"GET /v1/stream/poll?cursor=0%3A12&client=a&client=b&wait= HTTP/1.1\r\n"
        b"Host: gw\r\nAuthorization:  Bearer ght_x.y \r\nconnection: Keep-Alive"
    )
    assert parsed is not None
    query, headers, keep_alive, http10 = parsed
    assert query["cursor"] == "0:12"
    assert query.getall("client") == ["a", "b"]
    assert query["wait"] == ""
    assert headers["authorization"] == "Bearer ght_x.y"
    assert keep_alive and not http10


@pytest.mark.parametrize(
    "query", ["a=1&b=2", "cursor=0%3A12&client=a+b", "x&y=&=z", "&&a=1&", "a=%ZZ", "k=v=w", ""]
)
def test_the_query_is_decoded_as_a_form(query: str) -> None:
    parsed = parse_poll_head(f"GET /v1/stream/poll?{query} HTTP/1.0".encode())
    assert parsed is not None
    assert list(parsed[0].items()) == parse_qsl(query, keep_blank_values=True)


@pytest.mark.parametrize(
    ("connection", "version", "keep_alive"),
    [
        ("", "HTTP/1.1", True),
        ("close", "HTTP/1.1", False),
        ("", "HTTP/1.0", False),
        ("keep-alive", "HTTP/1.0", True),
    ],
)
def test_keep_alive_follows_the_http_version(
    connection: str, version: str, keep_alive: bool
) -> None:
    head = f"GET /v1/stream/poll {version}\r\nHost: gw"
    if connection:
        head += f"\r\nConnection: {connection}"
    parsed = parse_poll_head(head.encode())
    assert parsed is not None
    assert parsed[2] is keep_alive
    assert parsed[3] is (version == "HTTP/1.0")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v1/stream/sse HTTP/1.1\r\nHost: gw",
        b"GET /v1/stream/pollx HTTP/1.1\r\nHost: gw",
        b"HEAD /v1/stream/poll HTTP/1.1\r\nHost: gw",
        b"POST /v1/stream/poll HTTP/1.1\r\nContent-Length: 2",
        b"GET /v1/stream/poll HTTP/2.0\r\nHost: gw",
        b"GET /v1/stream/poll  HTTP/1.1\r\nHost: gw",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\nContent-Length: 5",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\n folded: line",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost : gw",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\nno colon here",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\nX: a\nY: b",
        b"GET /v1/stream/poll HTTP/1.1\r\nX: a",
        b"GET /v1/stream/poll HTTP/1.1\r\nHost: a\r\nHost: b",
    ],
)
def test_anything_but_a_plain_long_poll_is_left_to_aiohttp(head: bytes) -> None:
    assert parse_poll_head(head) is None


def test_response_bytes() -> None:
    data = response_bytes(
        200, "OK", [("Content-Type", "application/x-ndjson")], b"{}\n", True, True
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Length: 3" in lines and "Connection: keep-alive" in lines
    assert any(line.startswith("Date: ") and line.endswith(" GMT") for line in lines)
    assert body == b"{}\n"
    closing = response_bytes(400, "Bad Request", [], b"", False, False)
    assert b"Connection: close\r\n" in closing and b"Content-Length: 0\r\n" in closing


# -- connections -------------------------------------------------------------------------------


class PollLogic:
    """Stands in for :meth:`StreamEndpoints.poll_body`: answers ``n=<k>`` with the request's
    query and headers as JSON, after ``sleep=<s>``; ``fail=<status>`` refuses, ``crash``
    raises."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.cancelled = 0

    async def poll_body(self, request: StreamRequest) -> bytes:
        doc = {
            "query": dict(request.query),
            "auth": request.headers.get("Authorization"),
            "remote": request.remote,
            "path": request.path,
        }
        self.seen.append(doc)
        try:
            await asyncio.sleep(float(request.query.get("sleep", "0")))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if "fail" in request.query:
            raise web.HTTPTemporaryRedirect(
                "http://other:1/v1/stream/poll?redirected=1", headers={"X-GovHub-Reason": "moved"}
            )
        if "crash" in request.query:
            raise RuntimeError("boom")
        return orjson.dumps(doc) + b"\n"


async def _other(request: web.Request) -> web.Response:
    return web.json_response({"aiohttp": request.path, "method": request.method})


@asynccontextmanager
async def front_door(keepalive_s: float = 75.0) -> AsyncIterator[tuple[int, PollLogic, Doorkeeper]]:
    logic = PollLogic()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _other)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    assert runner.server is not None
    keeper = Doorkeeper(cast(Any, logic), runner.server)
    keeper.keepalive_s = keepalive_s
    server = await asyncio.get_running_loop().create_server(keeper.protocol, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], logic, keeper
    finally:
        server.close()
        keeper.close_all()
        await runner.cleanup()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 5)
    return status, headers, body


async def until(done: Callable[[], bool], timeout: float = 1.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


def run(test: Callable[[], Any]) -> None:
    asyncio.run(test())


def _lean() -> float:
    return float(metrics.GATEWAY_POLL_REQUESTS.labels("lean")._value.get())


def test_polls_on_one_connection_are_answered_in_order_then_aiohttp_takes_over() -> None:
    async def test() -> None:
        async with front_door() as (port, logic, keeper):
            lean = _lean()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /v1/stream/poll?n=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer t1\r\n\r\n"
            )
            status, headers, body = await read_response(reader)
            assert status == 200 and headers["content-type"] == "application/x-ndjson"
            doc = orjson.loads(body)
            assert doc["query"] == {"n": "1"} and doc["auth"] == "Bearer t1"
            assert doc["remote"] == "127.0.0.1" and doc["path"] == "/v1/stream/poll"
            # Pipelined: the slow first is answered first, then the second.
            writer.write(
                b"GET /v1/stream/poll?n=2&sleep=0.2 HTTP/1.1\r\nHost: gw\r\n\r\n"
                b"GET /v1/stream/poll?n=3 HTTP/1.1\r\nHost: gw\r\n\r\n"
            )
            answers = [orjson.loads((await read_response(reader))[2]) for _ in range(2)]
            assert [a["query"]["n"] for a in answers] == ["2", "3"]
            assert _lean() - lean == 3
            # Another path on the same connection: aiohttp answers it, and what follows.
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 200 and orjson.loads(body) == {"aiohttp": "/healthz", "method": "GET"}
            writer.write(b"GET /v1/stream/poll?n=4 HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, _, body = await read_response(reader)
            assert orjson.loads(body) == {"aiohttp": "/v1/stream/poll", "method": "GET"}
            assert _lean() - lean == 3 and len(logic.seen) == 3
            assert not keeper.connections  # aiohttp's connection now
            writer.close()

    run(test)


def test_a_connection_that_begins_otherwise_is_aiohttp_s() -> None:
    async def test() -> None:
        async with front_door() as (port, logic, _keeper):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # The request line arrives in pieces; a body makes it aiohttp's too.
            writer.write(b"POST /v1/str")
            await asyncio.sleep(0.05)
            writer.write(b"eam/poll HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}")
            status, _, body = await read_response(reader)
            assert status == 200
            assert orjson.loads(body) == {"aiohttp": "/v1/stream/poll", "method": "POST"}
            assert not logic.seen
            writer.close()

    run(test)


def test_refusals_errors_and_closing() -> None:
    async def test() -> None:
        async with front_door() as (port, _logic, _keeper):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v1/stream/poll?fail=1 HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert status == 307
            assert headers["location"] == "http://other:1/v1/stream/poll?redirected=1"
            assert headers["x-govhub-reason"] == "moved"
            writer.write(b"GET /v1/stream/poll?crash=1 HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 500 and headers["connection"] == "close"
            assert orjson.loads(body)["reason"] == "internal"
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
            # HTTP/1.0 without keep-alive: answered, then closed.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v1/stream/poll?n=1 HTTP/1.0\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert status == 200 and headers["connection"] == "close"
            assert await asyncio.wait_for(reader.read(), 5) == b""
            # A head that never ends is refused once it is too large.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\n" + b"X-Pad: aaaaaaaa\r\n" * 1200
            )
            status, headers, _ = await read_response(reader)
            assert status == 431
            assert await asyncio.wait_for(reader.read(), 5) == b""

    run(test)


def test_a_client_that_leaves_cancels_its_poll() -> None:
    async def test() -> None:
        async with front_door() as (port, logic, keeper):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v1/stream/poll?sleep=30 HTTP/1.1\r\nHost: gw\r\n\r\n")
            await until(lambda: bool(logic.seen))
            writer.close()
            await until(lambda: logic.cancelled > 0)
            assert logic.cancelled == 1
            assert not keeper.connections

    run(test)


def test_idle_connections_are_closed_and_busy_ones_kept() -> None:
    async def test() -> None:
        async with front_door(keepalive_s=0.1) as (port, _logic, keeper):
            silent_reader, _silent = await asyncio.open_connection("127.0.0.1", port)
            idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)
            idle.write(b"GET /v1/stream/poll HTTP/1.1\r\nHost: gw\r\n\r\n")
            await read_response(idle_reader)
            busy_reader, busy = await asyncio.open_connection("127.0.0.1", port)
            busy.write(b"GET /v1/stream/poll?sleep=0.6 HTTP/1.1\r\nHost: gw\r\n\r\n")
            await asyncio.sleep(0.3)
            keeper.sweep()
            assert await asyncio.wait_for(silent_reader.read(), 5) == b""
            assert await asyncio.wait_for(idle_reader.read(), 5) == b""
            status, _, _ = await read_response(busy_reader)
            assert status == 200
            assert len(keeper.connections) == 1

    run(test)
