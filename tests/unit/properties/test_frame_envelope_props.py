"""Delivery frame envelopes: round trips for both suites; any change, truncation or
garbage gives a typed crypto error, never a crash and never a wrong plaintext."""

from __future__ import annotations

import contextlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.crypto.errors import CryptoError
from hub.crypto.frames import (
    FrameEntry,
    FrameHeader,
    decode_entries,
    encode_entries,
    open_frame,
    peek_header,
    seal_frame,
)
from hub.crypto.suites import PayloadSuite, new_data_key

from .conftest import PROPS

KEY_ID = os.urandom(16)
KEYS = {suite: new_data_key(suite) for suite in PayloadSuite}

names = st.text(min_size=1, max_size=20).filter(lambda s: 0 < len(s.encode()) < 200)


@st.composite
def frames(draw: st.DrawFn) -> tuple[FrameHeader, list[FrameEntry]]:
    suite = draw(st.sampled_from(list(PayloadSuite)))
    partition = draw(st.integers(0, 2**31 - 1))
    first = draw(st.integers(0, 2**40))
    offsets = sorted(draw(st.lists(st.integers(first, first + 1000), min_size=1, max_size=5)))
    entries = [
        FrameEntry(
            draw(st.integers(0, 2**31 - 1)),
            draw(names),
            partition,
            offset,
            draw(names),
            draw(st.integers(0, 2**62)),
            draw(st.binary(max_size=64)),
        )
        for offset in offsets
    ]
    header = FrameHeader(
        suite, draw(names), draw(names), draw(names), KEY_ID, partition, offsets[0], offsets[-1]
    )
    return header, entries


def _key_for(suite: PayloadSuite):  # type: ignore[no-untyped-def]
    return lambda key_id: KEYS[suite]


@settings(PROPS)
@given(frames())
def test_seal_open_round_trip(case: tuple[FrameHeader, list[FrameEntry]]) -> None:
    header, entries = case
    sealed = seal_frame(header, entries, KEYS[header.suite])
    got_header, got = open_frame(sealed, header.recipient, _key_for(header.suite))
    assert got_header == header and got == entries
    assert decode_entries(encode_entries(entries)) == entries


@settings(PROPS)
@given(frames(), st.data())
def test_any_change_is_refused_with_a_typed_error(
    case: tuple[FrameHeader, list[FrameEntry]], data: st.DataObject
) -> None:
    header, entries = case
    sealed = bytearray(seal_frame(header, entries, KEYS[header.suite]))
    how = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if how == "flip":
        at = data.draw(st.integers(0, len(sealed) - 1))
        sealed[at] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        del sealed[data.draw(st.integers(0, len(sealed) - 1)) :]
    else:
        sealed += data.draw(st.binary(min_size=1, max_size=8))
    try:
        got_header, got = open_frame(bytes(sealed), header.recipient, _key_for(header.suite))
    except CryptoError:
        return
    raise AssertionError(f"tampered frame opened: {got_header} {got}")


@settings(PROPS)
@given(st.binary(max_size=300))
def test_garbage_gives_typed_errors_only(data: bytes) -> None:
    for parse in (peek_header, decode_entries):
        with contextlib.suppress(CryptoError):
            parse(data)
    with contextlib.suppress(CryptoError):
        open_frame(data, "anyone", lambda key_id: KEYS[PayloadSuite.AES_256_GCM])
