"""Delivery frames: the encrypted envelope the router produces to ``govhub.dlv``.

A frame carries a batch of entries for one recipient, one subscription and one source
partition. The header travels in clear (so the gateway can route on it) and is the AEAD's
associated data, so none of it can be changed, and a frame cannot be moved to another
recipient, subscription or offset range without the tag failing. The byte layout is
specified in ``docs/wire-format.md``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.crypto.errors import (
    CryptoError,
    FrameFormatError,
    FrameReplayError,
    WrongRecipientError,
)
from hub.crypto.suites import NONCE_LEN, TAG_LEN, PayloadAead, PayloadSuite, open_, payload_aead

__all__ = [
    "ENTRIES_OVERHEAD",
    "ENTRY_OVERHEAD",
    "FRAME_VERSION",
    "KEY_ID_LEN",
    "MAGIC",
    "MAX_FRAME_BYTES",
    "FrameEntry",
    "FrameHeader",
    "FrameReplayError",
    "FrameSealer",
    "FrameSequenceChecker",
    "FrameTooLargeError",
    "HeaderTemplate",
    "decode_entries",
    "encode_entries",
    "entry_size",
    "frame_overhead",
    "open_frame",
    "peek_header",
    "seal_frame",
]

MAGIC = b"GHDF"
FRAME_VERSION = 1
KEY_ID_LEN = 16

# Below the 1 MB default of librdkafka's message.max.bytes and the broker's
# max.message.bytes, with room for the Kafka record key and headers.
MAX_FRAME_BYTES = 900_000

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_U16_MAX = 0xFFFF

# magic, version, suite, key id, source partition, first offset, last offset
_FIXED = struct.Struct(">4sBB16siqq")
_U16 = struct.Struct(">H")
# entry count
_COUNT = struct.Struct(">I")
# schema id, partition, offset, ingested at, topic len, record id len, payload len
_ENTRY = struct.Struct(">iiqqHHI")

ENTRIES_OVERHEAD = _COUNT.size
"""Bytes the entries block adds once, before the first entry."""
ENTRY_OVERHEAD = _ENTRY.size
"""Bytes each entry adds besides its UTF-8 topic, UTF-8 record id and payload."""


class FrameTooLargeError(ValueError):
    """The sealed frame would exceed `MAX_FRAME_BYTES`; split the batch."""


@dataclass(frozen=True, slots=True)
class FrameEntry:
    """One delivered record: the masked/projected view of one source record."""

    schema_id: int
    topic: str
    partition: int
    offset: int
    record_id: str
    ingested_at_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The clear, authenticated part of a frame.

    Construction validates every field and encodes the header once; the encoded bytes are
    the AEAD associated data. `key_id` names the recipient's data key (its key epoch).
    """

    suite: PayloadSuite
    recipient: str
    resource: str
    subscription: str
    key_id: bytes
    source_partition: int
    first_offset: int
    last_offset: int
    version: int = FRAME_VERSION
    _encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.suite) is not PayloadSuite:
            object.__setattr__(self, "suite", PayloadSuite(self.suite))
        if type(self.key_id) is not bytes:
            object.__setattr__(self, "key_id", bytes(self.key_id))
        if self.version != FRAME_VERSION:
            raise ValueError(f"frame version {self.version} is not supported")
        if len(self.key_id) != KEY_ID_LEN:
            raise ValueError(f"key_id must be {KEY_ID_LEN} bytes, got {len(self.key_id)}")
        if not 0 <= self.source_partition <= _INT32_MAX:
            raise ValueError(f"source_partition {self.source_partition} is out of range")
        if not 0 <= self.first_offset <= self.last_offset <= _INT64_MAX:
            raise ValueError(
                f"offset range {self.first_offset}..{self.last_offset} is invalid: "
                "need 0 <= first_offset <= last_offset < 2**63"
            )
        parts = [
            _FIXED.pack(
                MAGIC,
                FRAME_VERSION,
                self.suite,
                self.key_id,
                self.source_partition,
                self.first_offset,
                self.last_offset,
            )
        ]
        for name in ("recipient", "resource", "subscription"):
            raw = getattr(self, name).encode("utf-8")
            if not raw or len(raw) > _U16_MAX:
                raise ValueError(f"{name} must be 1..{_U16_MAX} bytes of UTF-8")
            parts.append(_U16.pack(len(raw)))
            parts.append(raw)
        object.__setattr__(self, "_encoded", b"".join(parts))

    def to_bytes(self) -> bytes:
        """The encoded header: the bytes before the nonce, and the AEAD associated data."""
        return self._encoded


class HeaderTemplate:
    """Encodes headers for one (suite, key, recipient, resource, subscription): only the
    source partition and offset range change from frame to frame. The bytes are exactly
    :meth:`FrameHeader.to_bytes` of the same fields."""

    __slots__ = ("_fixed", "_names")

    def __init__(
        self,
        suite: PayloadSuite,
        key_id: bytes,
        recipient: str,
        resource: str,
        subscription: str,
    ) -> None:
        # Validates every field once, as a FrameHeader does.
        probe = FrameHeader(suite, recipient, resource, subscription, key_id, 0, 0, 0)
        self._fixed = struct.Struct(">4sBB16s").pack(MAGIC, FRAME_VERSION, probe.suite, key_id)
        self._names = probe._encoded[_FIXED.size :]

    def encode(self, source_partition: int, first_offset: int, last_offset: int) -> bytes:
        if not 0 <= source_partition <= _INT32_MAX or not (
            0 <= first_offset <= last_offset <= _INT64_MAX
        ):
            raise ValueError(
                f"partition {source_partition} / offsets {first_offset}..{last_offset} invalid"
            )
        return b"".join(
            (self._fixed, _RANGE.pack(source_partition, first_offset, last_offset), self._names)
        )


_RANGE = struct.Struct(">iqq")


def frame_overhead(header: FrameHeader) -> int:
    """Sealed frame size minus the entries block: header, nonce and tag."""
    return len(header._encoded) + NONCE_LEN + TAG_LEN


def entry_size(entry: FrameEntry) -> int:
    """Encoded size of one entry inside the entries block (for splitting batches)."""
    return (
        ENTRY_OVERHEAD
        + len(entry.topic.encode("utf-8"))
        + len(entry.record_id.encode("utf-8"))
        + len(entry.payload)
    )


def encode_entries(entries: Sequence[FrameEntry]) -> bytes:
    """Encode the frame plaintext. Raises ValueError if a field does not fit its slot."""
    pack = _ENTRY.pack
    topics: dict[str, bytes] = {}
    parts: list[bytes] = [_COUNT.pack(len(entries))]
    extend = parts.extend
    try:
        for entry in entries:
            topic = topics.get(entry.topic)
            if topic is None:
                topic = topics[entry.topic] = entry.topic.encode("utf-8")
            record_id = entry.record_id.encode("utf-8")
            payload = entry.payload
            extend(
                (
                    pack(
                        entry.schema_id,
                        entry.partition,
                        entry.offset,
                        entry.ingested_at_ms,
                        len(topic),
                        len(record_id),
                        len(payload),
                    ),
                    topic,
                    record_id,
                    payload,
                )
            )
    except struct.error as exc:
        raise ValueError(f"frame entry field out of range: {exc}") from None
    return b"".join(parts)


def decode_entries(data: bytes) -> list[FrameEntry]:
    """Decode a frame plaintext; raises FrameFormatError (only) on malformed input."""
    view = memoryview(data)
    size = len(view)
    if size < ENTRIES_OVERHEAD:
        raise FrameFormatError("entries block is truncated")
    (count,) = _COUNT.unpack_from(view, 0)
    if count > (size - ENTRIES_OVERHEAD) // ENTRY_OVERHEAD:
        raise FrameFormatError(f"entries block claims {count} entries in {size} bytes")
    unpack_from = _ENTRY.unpack_from
    entries: list[FrameEntry] = []
    append = entries.append
    pos = ENTRIES_OVERHEAD
    try:
        for _ in range(count):
            if pos + ENTRY_OVERHEAD > size:
                raise FrameFormatError("entries block is truncated")
            schema_id, partition, offset, ingested_at_ms, topic_len, rid_len, payload_len = (
                unpack_from(view, pos)
            )
            pos += ENTRY_OVERHEAD
            rid_at = pos + topic_len
            payload_at = rid_at + rid_len
            end = payload_at + payload_len
            if end > size:
                raise FrameFormatError("entry runs past the end of the entries block")
            append(
                FrameEntry(
                    schema_id,
                    str(view[pos:rid_at], "utf-8"),
                    partition,
                    offset,
                    str(view[rid_at:payload_at], "utf-8"),
                    ingested_at_ms,
                    view[payload_at:end].tobytes(),
                )
            )
            pos = end
    except UnicodeDecodeError as exc:
        raise FrameFormatError(f"entry string is not UTF-8: {exc.reason}") from None
    if pos != size:
        raise FrameFormatError(f"{size - pos} trailing bytes after the last entry")
    return entries


class FrameSealer:
    """Seals frames under one data key, reusing the AEAD object across frames.

    The router keeps one per (recipient, key id). `frames_sealed` counts uses of the key
    in this process, to help bound random-nonce use per key well below 2**32.
    """

    __slots__ = ("_aead", "frames_sealed", "suite")

    def __init__(self, suite: PayloadSuite, key: bytes) -> None:
        self.suite = PayloadSuite(suite)
        self._aead: PayloadAead = payload_aead(self.suite, key)
        self.frames_sealed = 0

    def seal(
        self, header: FrameHeader, entries: Sequence[FrameEntry], nonce: bytes | None = None
    ) -> bytes:
        """Encode and encrypt `entries` under `header`; returns the frame bytes.

        Raises FrameTooLargeError (a ValueError) if the frame would exceed MAX_FRAME_BYTES,
        and ValueError for a header of another suite, a bad nonce or out-of-range fields.
        """
        if header.suite is not self.suite:
            raise ValueError(f"header suite {header.suite.name} != sealer suite {self.suite.name}")
        return self.seal_block(header._encoded, encode_entries(entries), nonce)

    def seal_block(self, aad: bytes, plaintext: bytes, nonce: bytes | None = None) -> bytes:
        """Encrypt an encoded entries block under an encoded header (the router's path:
        its native loop encodes the entries, :func:`encode_header` the header)."""
        size = len(aad) + NONCE_LEN + len(plaintext) + TAG_LEN
        if size > MAX_FRAME_BYTES:
            raise FrameTooLargeError(
                f"frame would be {size} bytes > MAX_FRAME_BYTES ({MAX_FRAME_BYTES}); "
                "split the batch"
            )
        if nonce is None:
            nonce = os.urandom(NONCE_LEN)
        elif len(nonce) != NONCE_LEN:
            raise ValueError(f"nonce must be {NONCE_LEN} bytes, got {len(nonce)}")
        ciphertext = self._aead.encrypt(nonce, plaintext, aad)
        self.frames_sealed += 1
        return b"".join((aad, nonce, ciphertext))


def seal_frame(
    header: FrameHeader,
    entries: Sequence[FrameEntry],
    key: bytes,
    nonce: bytes | None = None,
) -> bytes:
    """Seal one frame. `nonce` None draws a random 96-bit nonce (fixed ones are for tests)."""
    return FrameSealer(header.suite, key).seal(header, entries, nonce)


def _parse_header(frame: bytes) -> tuple[FrameHeader, int]:
    """Parse the clear header; returns it and the offset where the nonce starts."""
    size = len(frame)
    if size < _FIXED.size:
        raise FrameFormatError(f"frame of {size} bytes is truncated")
    if frame[:4] != MAGIC:
        raise FrameFormatError(f"bad magic {frame[:4]!r}, expected {MAGIC!r}")
    if frame[4] != FRAME_VERSION:
        raise FrameFormatError(f"unsupported frame version {frame[4]}")
    _, version, suite_id, key_id, partition, first, last = _FIXED.unpack_from(frame, 0)
    try:
        suite = PayloadSuite(suite_id)
    except ValueError:
        raise FrameFormatError(f"unknown payload suite id {suite_id}") from None
    pos = _FIXED.size
    strings: list[str] = []
    for name in ("recipient", "resource", "subscription"):
        if pos + 2 > size:
            raise FrameFormatError(f"frame is truncated before {name}")
        (length,) = _U16.unpack_from(frame, pos)
        pos += 2
        if pos + length > size:
            raise FrameFormatError(f"frame is truncated inside {name}")
        try:
            strings.append(frame[pos : pos + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise FrameFormatError(f"{name} is not UTF-8") from None
        pos += length
    if size - pos < NONCE_LEN + TAG_LEN:
        raise FrameFormatError("frame is truncated: no room for nonce and tag")
    try:
        header = FrameHeader(
            suite, strings[0], strings[1], strings[2], key_id, partition, first, last, version
        )
    except ValueError as exc:
        raise FrameFormatError(f"invalid frame header: {exc}") from None
    return header, pos


def peek_header(frame: bytes) -> FrameHeader:
    """Parse the header without decrypting (for routing and for picking the key)."""
    return _parse_header(bytes(frame))[0]


def open_frame(
    frame: bytes,
    expected_recipient: str,
    key_for: Callable[[bytes], bytes],
) -> tuple[FrameHeader, list[FrameEntry]]:
    """Verify and decrypt a frame addressed to `expected_recipient`.

    Checks the recipient (WrongRecipientError) before asking ``key_for(key_id)`` for the
    data key (which may raise UnknownKeyError), then the tag (FrameAuthError). Entries must
    come from the header's source partition and offset range (FrameFormatError otherwise).
    """
    frame = bytes(frame)
    header, pos = _parse_header(frame)
    if header.recipient != expected_recipient:
        raise WrongRecipientError(f"frame is for {header.recipient!r}, not {expected_recipient!r}")
    key = key_for(header.key_id)
    nonce_end = pos + NONCE_LEN
    plaintext = open_(header.suite, key, frame[pos:nonce_end], frame[nonce_end:], frame[:pos])
    entries = decode_entries(plaintext)
    first, last, partition = header.first_offset, header.last_offset, header.source_partition
    for entry in entries:
        if entry.partition != partition or not first <= entry.offset <= last:
            raise FrameFormatError(
                f"entry {entry.partition}@{entry.offset} is outside the header's "
                f"{partition}@{first}..{last}"
            )
    return header, entries


_Position = tuple[str, str, int]


class FrameSequenceChecker:
    """Subscriber-side replay and re-order guard.

    Remembers, per (resource, subscription, source partition), the last source offset
    processed. A frame whose first offset is not past it is a replay or arrived out of
    order. Keying on the subscription as well as the resource lets one recipient hold two
    subscriptions to the same resource (say, two views) without false alarms; a frame
    cannot change its subscription because the header is authenticated.

    Call `check` before processing a frame and `record` after it is safely processed;
    store `to_dict()` with the subscriber's cursor and restore it with `from_dict`.
    """

    __slots__ = ("_last",)

    STATE_VERSION = 1

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self._last: dict[_Position, int] = {}
        if state is not None:
            self._last = FrameSequenceChecker.from_dict(state)._last

    def last_offset(self, resource: str, subscription: str, source_partition: int) -> int | None:
        return self._last.get((resource, subscription, source_partition))

    def check(self, header: FrameHeader) -> None:
        last = self._last.get((header.resource, header.subscription, header.source_partition))
        if last is not None and header.first_offset <= last:
            raise FrameReplayError(
                f"frame {header.resource}/{header.subscription} partition "
                f"{header.source_partition} offsets {header.first_offset}..{header.last_offset} "
                f"does not follow the last processed offset {last} (replayed or re-ordered)"
            )

    def record(self, header: FrameHeader) -> None:
        position = (header.resource, header.subscription, header.source_partition)
        last = self._last.get(position)
        if last is None or header.last_offset > last:
            self._last[position] = header.last_offset

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: ``{"v": 1, "last": [[resource, subscription, partition, offset]]}``."""
        return {
            "v": self.STATE_VERSION,
            "last": [[r, s, p, o] for (r, s, p), o in sorted(self._last.items())],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> FrameSequenceChecker:
        """Restore from `to_dict` output; raises CryptoError for state it does not know."""
        checker = cls()
        if state.get("v") != cls.STATE_VERSION:
            raise CryptoError(f"unsupported sequence state version {state.get('v')!r}")
        rows = state.get("last", [])
        if not isinstance(rows, list):
            raise CryptoError("sequence state 'last' must be a list")
        for row in rows:
            match row:
                case [str(r), str(s), int(p), int(o)] if p >= 0 and o >= 0:
                    checker._last[(r, s, p)] = o
                case _:
                    raise CryptoError(f"bad sequence state row {row!r}")
        return checker
