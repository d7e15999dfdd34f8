"""The stream's wire format: cursors, frame routing, events in all three encodings."""

from __future__ import annotations

import base64
import contextlib
from typing import Literal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.crypto import FrameEntry, FrameHeader, PayloadSuite, new_data_key, peek_header, seal_frame
from hub.gateway.session import DeliveryFrame
from hub.gateway.wire import (
    EndEvent,
    FrameEvent,
    InvalidCursor,
    InvalidFrame,
    PositionEvent,
    StreamCursor,
    StreamFormatError,
    WelcomeEvent,
    decode_json_event,
    decode_ws_binary,
    frame_address,
    frame_json,
    frame_route,
    parse_cursor,
    sse_event,
    ws_frame_message,
)

_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=_SURROGATES), min_size=1, max_size=40
)


def sealed(recipient: str, resource: str, subscription: str) -> bytes:
    suite = PayloadSuite.AES_256_GCM
    header = FrameHeader(suite, recipient, resource, subscription, b"k" * 16, 0, 5, 6)
    entry = FrameEntry(7, "t", 0, 5, "rid", 1, b"payload")
    return seal_frame(header, [entry], new_data_key(suite))


def test_cursor_round_trip_and_errors() -> None:
    assert parse_cursor("3:1200") == StreamCursor(3, 1200)
    assert str(StreamCursor(0, 0)) == "0:0"
    for bad in ("", "3", "3:", ":5", "a:1", "1:-2", "1:2:3", "٣:1", "1:99999999999999999999"):
        with pytest.raises(InvalidCursor):
            parse_cursor(bad)


@given(names, names, names)
def test_frame_route_agrees_with_the_full_header_parser(r: str, res: str, sub: str) -> None:
    frame = sealed(r, res, sub)
    route = frame_route(frame)
    header = peek_header(frame)
    assert (route.recipient, route.resource, route.subscription) == (
        header.recipient,
        header.resource,
        header.subscription,
    )


@given(st.binary(max_size=200))
def test_frame_route_refuses_garbage_with_its_own_error(data: bytes) -> None:
    with contextlib.suppress(InvalidFrame):  # any other exception fails the test
        frame_route(data)


def test_frame_route_refuses_truncation() -> None:
    frame = sealed("rcpt", "dibao", "sub-1")
    header_len = 48 + len("rcpt") + len("dibao") + len("sub-1")
    for cut in (10, 43, 48, header_len - 1, header_len + 27):
        with pytest.raises(InvalidFrame):
            frame_route(frame[:cut])


def test_events_round_trip_in_every_encoding() -> None:
    raw = sealed("rcpt", "dibao", "sub-1")
    event = FrameEvent(after=10, offset=14, entries=3, timestamp_ms=1234, frame=raw)
    data = frame_json(event, DeliveryFrame(0, 14, "rcpt", "sub-1", 3, 1234, raw).b64())
    assert decode_json_event(data) == event
    assert decode_ws_binary(ws_frame_message(event)) == event
    sse = sse_event("frame", data, "0:15")
    assert sse.startswith(b"id: 0:15\nevent: frame\ndata: ") and sse.endswith(b"\n\n")
    welcome = WelcomeEvent("rcpt", 2, 40, "gw1", "ght_x", 99, 15.0)
    assert decode_json_event(orjson.dumps(welcome.to_json())) == welcome
    position = PositionEvent(77)
    assert decode_json_event(orjson.dumps(position.to_json())) == position
    end = EndEvent("revoked", 5, "subscription s is revoked")
    assert decode_json_event(orjson.dumps(end.to_json())) == end
    assert end.final and not EndEvent("slow-consumer", 5).final


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[1]",
        b'{"type": "frame", "after": 1, "offset": 0, "entries": 1, "ts": 1, "frame": "AA=="}',
        b'{"type": "frame", "after": 0, "offset": 1, "entries": 1, "ts": 1, "frame": "***"}',
        b'{"type": "position", "next": -1}',
        b'{"type": "position", "next": "3"}',
        b'{"type": "welcome"}',
        b'{"type": "other"}',
    ],
)
def test_malformed_events_raise_the_format_error(doc: bytes) -> None:
    with pytest.raises(StreamFormatError):
        decode_json_event(doc)


def test_malformed_ws_binary() -> None:
    with pytest.raises(StreamFormatError):
        decode_ws_binary(b"Fshort")
    message = ws_frame_message(FrameEvent(0, 1, 1, 1, b"x"))
    with pytest.raises(StreamFormatError):
        decode_ws_binary(b"X" + message[1:])


def test_base64_of_a_frame_is_standard() -> None:
    frame = DeliveryFrame(0, 0, "r", "s", 1, 0, b"\xff\x00abc")
    assert base64.b64decode(frame.b64()) == b"\xff\x00abc"


@given(names, names, names)
def test_frame_address_agrees_with_the_header_and_checks_the_key(
    r: str, res: str, sub: str
) -> None:
    frame = sealed(r, res, sub)
    assert frame_address(frame, r.encode()) == (r, sub)
    assert frame_address(frame, None) == (r, sub)
    assert frame_address(frame, r.encode() + b"x") is None


@given(st.binary(max_size=200), st.one_of(st.none(), st.binary(max_size=10)))
def test_frame_address_never_raises(data: bytes, key: bytes | None) -> None:
    frame_address(data, key)


offsets = st.integers(min_value=0, max_value=2**63 - 2)


@given(
    st.integers(min_value=0, max_value=2**31 - 1),
    offsets,
    offsets,
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=0, max_value=2**62),
    st.binary(max_size=300),
)
def test_the_fan_outs_one_step_encodings_equal_the_event_encodings(
    partition: int, after: int, offset: int, entries: int, ts: int, raw: bytes
) -> None:
    from hub.gateway.http import _sse_chunk, _sse_raw, _ws_binary
    from hub.gateway.wire import format_cursor, sse_frame_event, ws_frame_payload

    event = FrameEvent(after, offset, entries, ts, raw)
    frame = DeliveryFrame(partition, offset, "r", "s", entries, ts, raw)
    composed = sse_event(
        "frame", frame_json(event, frame.b64()), format_cursor(partition, offset + 1)
    )
    one_step = sse_frame_event(partition, after, offset, entries, ts, base64.b64encode(raw))
    assert one_step == composed == _sse_raw(partition, after, frame)
    assert _sse_chunk(partition, after, frame) == b"%x\r\n%b\r\n" % (len(composed), composed)
    assert ws_frame_payload(after, offset, entries, ts, raw) == ws_frame_message(event)
    message = ws_frame_message(event)
    assert _ws_binary(partition, after, frame).endswith(message)
