"""Property tests: parsers of untrusted bytes only ever raise CryptoError subclasses, and
a frame either opens to exactly what was sealed or does not open at all."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.crypto import (
    CryptoError,
    FrameEntry,
    PayloadSuite,
    decode_entries,
    encode_entries,
    open_frame,
    peek_header,
    seal_frame,
)
from hub.crypto.frames import MAGIC

from .builders import RECIPIENT, make_entries, make_header

FAST = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

AES_KEY = bytes(range(32))
SM4_KEY = bytes(range(16))


def key_for(key_id: bytes) -> bytes:
    return AES_KEY


int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
entry = st.builds(
    FrameEntry,
    schema_id=int32,
    topic=st.text(max_size=40),
    partition=int32,
    offset=int64,
    record_id=st.text(max_size=40),
    ingested_at_ms=int64,
    payload=st.binary(max_size=200),
)

# Random tails behind a valid magic and version reach the deeper parsing paths.
frame_like = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda tail: MAGIC + b"\x01" + tail),
    st.binary(max_size=300).map(lambda tail: MAGIC + b"\x01\x01" + tail),
    st.binary(max_size=300).map(lambda tail: MAGIC + b"\x01\x02" + tail),
)


@FAST
@given(st.lists(entry, max_size=20))
def test_entries_round_trip(entries: list[FrameEntry]) -> None:
    assert decode_entries(encode_entries(entries)) == entries


@FAST
@given(st.binary(max_size=400))
def test_decode_entries_raises_only_crypto_errors(data: bytes) -> None:
    with contextlib.suppress(CryptoError):
        decode_entries(data)


@FAST
@given(st.lists(entry, max_size=5), st.data())
def test_decode_entries_of_mangled_block_raises_only_crypto_errors(
    entries: list[FrameEntry], data: st.DataObject
) -> None:
    encoded = bytearray(encode_entries(entries))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    with contextlib.suppress(CryptoError):
        decode_entries(bytes(encoded[:cut]))


@FAST
@given(frame_like)
def test_peek_header_raises_only_crypto_errors(frame: bytes) -> None:
    with contextlib.suppress(CryptoError):
        peek_header(frame)


@FAST
@given(frame_like)
def test_open_frame_raises_only_crypto_errors(frame: bytes) -> None:
    with contextlib.suppress(CryptoError):
        open_frame(frame, RECIPIENT, key_for)


@FAST
@given(st.sampled_from(list(PayloadSuite)), st.data())
def test_mutated_frame_never_yields_a_plaintext(suite: PayloadSuite, data: st.DataObject) -> None:
    key = AES_KEY if suite is PayloadSuite.AES_256_GCM else SM4_KEY
    frame = bytearray(seal_frame(make_header(suite), make_entries(2), key))
    flips = data.draw(st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=4, unique=True))
    for position in flips:
        frame[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(frame)))
    mutated = bytes(frame[:cut])
    try:
        open_frame(mutated, RECIPIENT, lambda _key_id: key)
    except CryptoError:
        return
    raise AssertionError("a mutated frame opened")


@FAST
@given(st.sampled_from(list(PayloadSuite)), st.lists(entry, max_size=10))
def test_frames_round_trip(suite: PayloadSuite, entries: list[FrameEntry]) -> None:
    entries = [
        FrameEntry(e.schema_id, e.topic, 3, 100, e.record_id, e.ingested_at_ms, e.payload)
        for e in entries
    ]
    key = AES_KEY if suite is PayloadSuite.AES_256_GCM else SM4_KEY
    header = make_header(suite, first_offset=100, last_offset=100)
    assert open_frame(seal_frame(header, entries, key), RECIPIENT, lambda _k: key) == (
        header,
        entries,
    )
