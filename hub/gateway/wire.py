"""The subscriber stream: cursors, events and their three encodings (SSE, NDJSON, WebSocket).

A stream is a sequence of events for one recipient, read from its delivery partition:

* ``welcome`` — where the stream starts (partition, cursor), and a resume ticket;
* ``frame`` — one delivery frame, byte for byte as the router wrote it, with its partition
  offset, its entry count and ``after``: the cursor the stream stood at before it. The
  gateway promises that the recipient has no frame in ``[after, offset)``, so a subscriber
  that holds cursor ``c`` and receives a frame with ``after != c`` knows the stream skipped
  (``after > c``: a gap) or repeated (``after < c``) something;
* ``position`` — the cursor moved without a frame for this recipient (frames of other
  recipients share the partition); storing it keeps a later catch-up short;
* ``end`` — the gateway closes the stream, with the reason and the cursor to resume from.

The cursor is ``<partition>:<next offset>``: everything of the recipient below the offset
has been delivered. It is the same cursor the direct Kafka client stores, so a subscriber
may switch between the gateway and direct reading. The byte layout of each encoding is in
``docs/gateway.md``.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

__all__ = [
    "END_REASONS",
    "REASON_HEADER",
    "STREAM_PATHS",
    "EndEvent",
    "FrameEvent",
    "FrameRoute",
    "InvalidCursor",
    "InvalidFrame",
    "PositionEvent",
    "SseParser",
    "StreamCursor",
    "StreamEvent",
    "StreamFormatError",
    "WelcomeEvent",
    "decode_json_event",
    "decode_ws_binary",
    "format_cursor",
    "frame_address",
    "frame_route",
    "parse_cursor",
]

_I64_MAX = 2**63 - 1

STREAM_PATHS = {"sse": "/v1/stream/sse", "ws": "/v1/stream/ws", "poll": "/v1/stream/poll"}
REASON_HEADER = "X-GovHub-Reason"
"""Refusals carry their reason word here too (WebSocket clients do not see the body)."""

END_REASONS = (
    "revoked",  # no active subscription left: revoked
    "suspended",  # subscription suspended
    "expired",  # subscription expired
    "no-subscription",  # the party holds no subscription at all
    "party-suspended",
    "token-expired",
    "credentials-changed",  # token rotated or ticket no longer valid
    "slow-consumer",  # the per-subscriber buffer overflowed
    "gap",  # the cursor points at records removed by retention
    "shutdown",  # the gateway is stopping
    "replaced",  # the same subscriber opened another stream
)
"""Why a gateway ends a stream. The first six are final until an operator acts; the others
mean: reconnect (after a pause for ``slow-consumer``) and resume from ``next``."""

FINAL_END_REASONS = frozenset(END_REASONS[:7])


class StreamFormatError(ValueError):
    """An event, cursor or frame header that does not follow this format."""


class InvalidCursor(StreamFormatError):
    pass


class InvalidFrame(StreamFormatError):
    pass


@dataclass(frozen=True, slots=True)
class StreamCursor:
    partition: int
    next_offset: int

    def __str__(self) -> str:
        return format_cursor(self.partition, self.next_offset)


def format_cursor(partition: int, next_offset: int) -> str:
    return f"{partition}:{next_offset}"


def parse_cursor(text: str) -> StreamCursor:
    """``"3:1200"`` → ``StreamCursor(3, 1200)``; raises InvalidCursor with the reason."""
    head, sep, tail = text.strip().partition(":")
    if not sep or not head.isascii() or not tail.isascii():
        raise InvalidCursor(f"cursor {text!r} must be '<partition>:<next offset>'")
    if not head.isdigit() or not tail.isdigit() or len(head) > 10 or len(tail) > 19:
        raise InvalidCursor(f"cursor {text!r} must be two non-negative integers")
    partition, offset = int(head), int(tail)
    if partition > 2**31 - 1 or offset > _I64_MAX:
        raise InvalidCursor(f"cursor {text!r} is out of range")
    return StreamCursor(partition, offset)


# -- frame header routing --------------------------------------------------------------

# The clear header of a delivery frame (docs/wire-format.md §3.1): 42 fixed bytes, then
# recipient, resource and subscription as u16-length UTF-8 strings.
_MAGIC = b"GHDF"
_FIXED_LEN = 42
_U16 = struct.Struct(">H")
_NONCE_AND_TAG = 28


@dataclass(frozen=True, slots=True)
class FrameRoute:
    recipient: str
    resource: str
    subscription: str


def frame_route(frame: bytes) -> FrameRoute:
    """The addressing strings of a frame's clear header, without building the full header.

    The gateway routes on these; it cannot verify them (only the recipient holds the key),
    so the SDK checks the whole header as AEAD associated data.
    """
    size = len(frame)
    if size < _FIXED_LEN or frame[:4] != _MAGIC or frame[4] != 1:
        raise InvalidFrame("not a version 1 delivery frame")
    pos = _FIXED_LEN
    strings: list[str] = []
    for name in ("recipient", "resource", "subscription"):
        if pos + 2 > size:
            raise InvalidFrame(f"frame truncated before {name}")
        (length,) = _U16.unpack_from(frame, pos)
        pos += 2
        if length == 0 or pos + length > size:
            raise InvalidFrame(f"frame truncated inside {name}")
        try:
            strings.append(frame[pos : pos + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidFrame(f"{name} is not UTF-8") from None
        pos += length
    if size - pos < _NONCE_AND_TAG:
        raise InvalidFrame("frame truncated: no room for nonce and tag")
    return FrameRoute(strings[0], strings[1], strings[2])


def frame_address(frame: bytes, key: bytes | None) -> tuple[str, str] | None:
    """(recipient, subscription) of a frame, or None when it is not a well-formed frame
    whose recipient equals the record ``key`` (when given): the gateway's per-record fast
    path, comparing bytes and decoding only what it routes on."""
    size = len(frame)
    if size < _FIXED_LEN + 6 + _NONCE_AND_TAG or frame[:5] != b"GHDF\x01":
        return None
    pos = _FIXED_LEN
    length = (frame[pos] << 8) | frame[pos + 1]
    recipient = frame[pos + 2 : pos + 2 + length]
    if not length or (key is not None and recipient != key):
        return None
    pos += 2 + length
    if pos + 2 > size:
        return None
    pos += 2 + ((frame[pos] << 8) | frame[pos + 1])
    if pos + 2 > size:
        return None
    length = (frame[pos] << 8) | frame[pos + 1]
    pos += 2
    if not length or pos + length + _NONCE_AND_TAG > size:
        return None
    try:
        return recipient.decode("utf-8"), frame[pos : pos + length].decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WelcomeEvent:
    recipient: str
    partition: int
    next_offset: int
    instance: str
    ticket: str | None = None
    ticket_expires_ms: int | None = None
    heartbeat_s: float = 15.0

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "welcome",
            "recipient": self.recipient,
            "partition": self.partition,
            "next": self.next_offset,
            "instance": self.instance,
            "ticket": self.ticket,
            "ticket_expires_ms": self.ticket_expires_ms,
            "heartbeat_s": self.heartbeat_s,
        }


@dataclass(frozen=True, slots=True)
class FrameEvent:
    after: int
    offset: int
    entries: int
    timestamp_ms: int
    frame: bytes = field(repr=False)

    @property
    def next_offset(self) -> int:
        return self.offset + 1


@dataclass(frozen=True, slots=True)
class PositionEvent:
    next_offset: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "position", "next": self.next_offset}


@dataclass(frozen=True, slots=True)
class EndEvent:
    reason: str
    next_offset: int | None
    message: str = ""
    location: str | None = None

    @property
    def final(self) -> bool:
        """True when reconnecting cannot help until an operator changes something."""
        return self.reason in FINAL_END_REASONS

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": "end",
            "reason": self.reason,
            "next": self.next_offset,
            "message": self.message,
        }
        if self.location is not None:
            doc["location"] = self.location
        return doc


StreamEvent = WelcomeEvent | FrameEvent | PositionEvent | EndEvent
StreamProtocol = Literal["sse", "ws", "poll"]

# -- encodings -------------------------------------------------------------------------

_WS_FRAME = struct.Struct(">cqqIq")  # type 'F', after, offset, entries, timestamp ms
WS_FRAME_TYPE = b"F"


def frame_json(event: FrameEvent, frame_b64: str) -> bytes:
    """The JSON object of a frame event (SSE data and NDJSON line share it)."""
    return orjson.dumps(
        {
            "type": "frame",
            "after": event.after,
            "offset": event.offset,
            "entries": event.entries,
            "ts": event.timestamp_ms,
            "frame": frame_b64,
        }
    )


_SSE_FRAME = (
    b"id: %d:%d\nevent: frame\n"
    b'data: {"type":"frame","after":%d,"offset":%d,"entries":%d,"ts":%d,"frame":"%b"}\n\n'
)


def sse_frame_event(
    partition: int, after: int, offset: int, entries: int, timestamp_ms: int, frame_b64: bytes
) -> bytes:
    """A frame event in SSE form — byte for byte ``sse_event("frame", frame_json(...),
    cursor)`` — formatted in one step: the fan-out writes one per frame and stream."""
    return _SSE_FRAME % (partition, offset + 1, after, offset, entries, timestamp_ms, frame_b64)


def sse_event(name: str, data: bytes, event_id: str | None = None) -> bytes:
    head = b"" if event_id is None else b"id: " + event_id.encode() + b"\n"
    return head + b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def ws_frame_message(event: FrameEvent) -> bytes:
    return ws_frame_payload(
        event.after, event.offset, event.entries, event.timestamp_ms, event.frame
    )


def ws_frame_payload(
    after: int, offset: int, entries: int, timestamp_ms: int, frame: bytes
) -> bytes:
    """The binary message of a frame event (``ws_frame_message`` without the event)."""
    return _WS_FRAME.pack(WS_FRAME_TYPE, after, offset, entries, timestamp_ms) + frame


def decode_ws_binary(message: bytes) -> FrameEvent:
    if len(message) < _WS_FRAME.size or message[:1] != WS_FRAME_TYPE:
        raise StreamFormatError("binary WebSocket message is not a frame event")
    _, after, offset, entries, ts = _WS_FRAME.unpack_from(message, 0)
    return _checked_frame(after, offset, entries, ts, bytes(message[_WS_FRAME.size :]))


def _checked_frame(after: int, offset: int, entries: int, ts: int, frame: bytes) -> FrameEvent:
    if not 0 <= after <= offset or entries < 0:
        raise StreamFormatError(f"frame event with after={after}, offset={offset} is invalid")
    return FrameEvent(after, offset, entries, ts, frame)


def _int(doc: dict[str, Any], name: str, optional: bool = False) -> Any:
    value = doc.get(name)
    if value is None and optional:
        return None
    if type(value) is not int or value < 0:
        raise StreamFormatError(f"event field {name!r} must be a non-negative integer")
    return value


def decode_json_event(raw: bytes | str) -> StreamEvent:
    """One event from its JSON form (SSE data, NDJSON line, WebSocket text message)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StreamFormatError(f"event is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise StreamFormatError("event must be a JSON object")
    kind = doc.get("type")
    try:
        if kind == "frame":
            try:
                frame = base64.b64decode(doc["frame"], validate=True)
            except (KeyError, TypeError, ValueError):
                raise StreamFormatError("frame event without valid base64 'frame'") from None
            return _checked_frame(
                _int(doc, "after"),
                _int(doc, "offset"),
                _int(doc, "entries"),
                _int(doc, "ts"),
                frame,
            )
        if kind == "position":
            return PositionEvent(_int(doc, "next"))
        if kind == "welcome":
            return WelcomeEvent(
                recipient=str(doc["recipient"]),
                partition=_int(doc, "partition"),
                next_offset=_int(doc, "next"),
                instance=str(doc.get("instance", "")),
                ticket=doc.get("ticket"),
                ticket_expires_ms=_int(doc, "ticket_expires_ms", optional=True),
                heartbeat_s=float(doc.get("heartbeat_s", 15.0)),
            )
        if kind == "end":
            return EndEvent(
                reason=str(doc["reason"]),
                next_offset=_int(doc, "next", optional=True),
                message=str(doc.get("message", "")),
                location=doc.get("location"),
            )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StreamFormatError):
            raise
        raise StreamFormatError(f"{kind} event is incomplete: {exc}") from None
    raise StreamFormatError(f"unknown event type {kind!r}")


class SseParser:
    """Incremental Server-Sent Events parser: bytes in, (event, data) pairs out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        self._buffer += chunk
        out: list[tuple[str, bytes]] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                return out
            line = self._buffer[:newline].rstrip(b"\r")
            self._buffer = self._buffer[newline + 1 :]
            if not line:
                if self._data:
                    out.append((self._event or "message", b"\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(b":"):
                continue  # comment: keep-alive
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"data":
                self._data.append(value)
