"""The load generator's byte parsers: HTTP heads, chunked SSE, WebSocket frames, and the
kernel receive timestamp its latency figures start from."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from hub.gateway.loadgen import ChunkedBody, HttpHead, WsFrames, frame_recipient, receive_time


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def test_http_head_returns_what_follows_it() -> None:
    head = HttpHead()
    assert head.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chun") is None
    rest = head.feed(b"ked\r\nX-A: b\r\n\r\nbody")
    assert rest == b"body"
    assert head.status == 200
    assert head.headers["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("cut", [1, 3, 7, 12, 20, 33])
def test_chunks_survive_any_split_and_the_last_chunk_ends_the_stream(cut: int) -> None:
    wire = _chunk(b"event: frame\n") + _chunk(b"x" * 20) + _chunk(b"end") + b"0\r\n\r\n"
    body = ChunkedBody()
    chunks = body.feed(wire[:cut]) + body.feed(wire[cut:])
    assert chunks == [b"event: frame\n", b"x" * 20, b"end"]
    assert body.ended


def test_an_end_event_in_the_same_read_as_the_last_chunk_is_not_lost() -> None:
    body = ChunkedBody()
    assert body.feed(_chunk(b"event: end\ndata: {}\n\n") + b"0\r\n\r\n") == [
        b"event: end\ndata: {}\n\n"
    ]
    assert body.ended


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300, 70_000])
def test_websocket_frames_of_every_length_form(size: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    if size < 126:
        wire = bytes((0x82, size)) + payload
    elif size < 65_536:
        wire = b"\x82\x7e" + size.to_bytes(2, "big") + payload
    else:
        wire = b"\x82\x7f" + size.to_bytes(8, "big") + payload
    wire += b"\x81\x02{}"
    frames = WsFrames()
    out = []
    for i in range(0, len(wire), 97):
        out += frames.feed(wire[i : i + 97])
    assert out == [(2, payload), (1, b"{}")]


def test_frame_recipient_reads_the_clear_header() -> None:
    header = b"GHDF\x01" + bytes(37) + struct.pack(">H", 5) + b"c0001" + b"rest"
    assert frame_recipient(header) == b"c0001"
    assert frame_recipient(b"XXXX" + header[4:]) == b""
    assert frame_recipient(b"GHDF") == b""


def test_receive_time_is_the_kernels_timestamp() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.socket()
    with server, client:
        client.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)
        client.connect(server.getsockname())
        peer, _ = server.accept()
        with peer:
            # Linux switches receive timestamps on for the whole system a moment after the
            # first socket asks (a deferred static-key change), so the first packets of a
            # fresh machine may come without one: try until a read carries a stamp.
            for _ in range(50):
                sent = time.time()
                peer.send(b"frame")
                time.sleep(0.05)
                read = time.time()
                data, ancillary, _, _ = client.recvmsg(100, socket.CMSG_SPACE(16))
                assert data == b"frame"
                if ancillary:
                    break
            assert ancillary, "the kernel never stamped a read"
            # When the bytes arrived, not when they were read.
            assert sent - 0.001 <= receive_time(ancillary) < read


def test_receive_time_without_a_timestamp_is_now() -> None:
    before = time.time()
    assert before <= receive_time([]) <= time.time()
