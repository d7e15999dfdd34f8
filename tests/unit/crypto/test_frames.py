from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import pytest

from hub.crypto import (
    MAX_FRAME_BYTES,
    CryptoError,
    FrameAuthError,
    FrameEntry,
    FrameFormatError,
    FrameSealer,
    FrameTooLargeError,
    PayloadSuite,
    UnknownKeyError,
    WrongRecipientError,
    decode_entries,
    encode_entries,
    entry_size,
    frame_overhead,
    new_data_key,
    open_frame,
    peek_header,
    seal_frame,
)
from hub.crypto.frames import ENTRIES_OVERHEAD, MAGIC
from hub.crypto.suites import NONCE_LEN, TAG_LEN

from .builders import KEY_ID, RECIPIENT, make_entries, make_header


def always(key: bytes) -> Callable[[bytes], bytes]:
    return lambda _key_id: key


def test_round_trip(suite: PayloadSuite) -> None:
    key = new_data_key(suite)
    header = make_header(suite)
    entries = make_entries()
    frame = seal_frame(header, entries, key)
    assert frame.startswith(MAGIC + b"\x01" + bytes([suite]))
    opened_header, opened = open_frame(frame, RECIPIENT, {KEY_ID: key}.__getitem__)
    assert opened_header == header
    assert opened == entries


def test_sealer_matches_seal_frame_and_counts(suite: PayloadSuite) -> None:
    key = new_data_key(suite)
    header, entries, nonce = make_header(suite), make_entries(), os.urandom(NONCE_LEN)
    sealer = FrameSealer(suite, key)
    assert sealer.seal(header, entries, nonce) == seal_frame(header, entries, key, nonce)
    sealer.seal(header, entries)
    assert sealer.frames_sealed == 2


def test_random_nonce_per_frame() -> None:
    key = new_data_key(PayloadSuite.AES_256_GCM)
    header, entries = make_header(), make_entries()
    assert seal_frame(header, entries, key) != seal_frame(header, entries, key)


def test_overhead_accounting(suite: PayloadSuite) -> None:
    header, entries = make_header(suite), make_entries(5)
    frame = seal_frame(header, entries, new_data_key(suite))
    plaintext_len = ENTRIES_OVERHEAD + sum(entry_size(e) for e in entries)
    assert len(encode_entries(entries)) == plaintext_len
    assert len(frame) == frame_overhead(header) + plaintext_len
    assert frame_overhead(header) == 42 + 6 + len(RECIPIENT) + 23 + 8 + NONCE_LEN + TAG_LEN


def test_empty_batch_round_trips() -> None:
    key = new_data_key(PayloadSuite.AES_256_GCM)
    frame = seal_frame(make_header(), [], key)
    assert open_frame(frame, RECIPIENT, always(key))[1] == []


def test_peek_header_without_key(suite: PayloadSuite) -> None:
    header = make_header(suite, recipient="区县-330106")
    frame = seal_frame(header, make_entries(), new_data_key(suite))
    assert peek_header(frame) == header
    assert peek_header(bytearray(frame)) == header  # type: ignore[arg-type]


def test_wrong_key_fails_authentication(suite: PayloadSuite) -> None:
    frame = seal_frame(make_header(suite), make_entries(), new_data_key(suite))
    with pytest.raises(FrameAuthError):
        open_frame(frame, RECIPIENT, always(new_data_key(suite)))


def test_key_of_other_suite_fails_authentication() -> None:
    frame = seal_frame(make_header(), make_entries(), new_data_key(PayloadSuite.AES_256_GCM))
    with pytest.raises(FrameAuthError):
        open_frame(frame, RECIPIENT, always(new_data_key(PayloadSuite.SM4_GCM)))


def test_wrong_recipient_is_refused_before_key_lookup() -> None:
    frame = seal_frame(make_header(), make_entries(), new_data_key(PayloadSuite.AES_256_GCM))
    asked: list[bytes] = []

    def key_for(key_id: bytes) -> bytes:
        asked.append(key_id)
        return b""

    with pytest.raises(WrongRecipientError):
        open_frame(frame, "330106001001", key_for)
    assert asked == []


def test_unknown_key_propagates() -> None:
    frame = seal_frame(make_header(), make_entries(), new_data_key(PayloadSuite.AES_256_GCM))

    def key_for(key_id: bytes) -> bytes:
        raise UnknownKeyError(key_id.hex())

    with pytest.raises(UnknownKeyError, match=KEY_ID.hex()):
        open_frame(frame, RECIPIENT, key_for)


def test_every_single_byte_change_is_detected(suite: PayloadSuite) -> None:
    key = new_data_key(suite)
    frame = seal_frame(make_header(suite), make_entries(2), key)
    for position in range(len(frame)):
        for mask in (0x01, 0x80):
            tampered = bytearray(frame)
            tampered[position] ^= mask
            with pytest.raises((FrameAuthError, FrameFormatError, WrongRecipientError)):
                open_frame(bytes(tampered), RECIPIENT, always(key))


def test_every_truncation_is_detected(suite: PayloadSuite) -> None:
    key = new_data_key(suite)
    frame = seal_frame(make_header(suite), make_entries(2), key)
    for length in range(len(frame)):
        with pytest.raises((FrameAuthError, FrameFormatError)):
            open_frame(frame[:length], RECIPIENT, always(key))
    with pytest.raises(FrameAuthError):
        open_frame(frame + b"\x00", RECIPIENT, always(key))


@pytest.mark.parametrize(
    "field, value",
    [
        ("resource", "household-registration"),
        ("subscription", "sub-0002"),
        ("source_partition", 4),
        ("first_offset", 99),
        ("last_offset", 103),
    ],
)
def test_header_is_bound_to_ciphertext(field: str, value: Any) -> None:
    """Moving a ciphertext under another header (same length fields) fails the tag."""
    key = new_data_key(PayloadSuite.AES_256_GCM)
    header = make_header()
    frame = seal_frame(header, make_entries(), key)
    aad_len = len(header.to_bytes())
    other = dataclasses.replace(header, **{field: value})
    forged = other.to_bytes() + frame[aad_len:]
    with pytest.raises(FrameAuthError):
        open_frame(forged, RECIPIENT, always(key))


def test_entries_must_match_header_range() -> None:
    key = new_data_key(PayloadSuite.AES_256_GCM)
    entries = make_entries(3, first_offset=100)
    narrow = make_header(first_offset=100, last_offset=101)
    with pytest.raises(FrameFormatError, match="outside"):
        open_frame(seal_frame(narrow, entries, key), RECIPIENT, always(key))
    other_partition = make_header(partition=9)
    with pytest.raises(FrameFormatError, match="outside"):
        open_frame(seal_frame(other_partition, entries, key), RECIPIENT, always(key))


@pytest.mark.parametrize(
    "changes",
    [
        {"key_id": b"short"},
        {"recipient": ""},
        {"resource": "x" * 70_000},
        {"source_partition": -1},
        {"first_offset": 5, "last_offset": 4},
        {"last_offset": 2**63},
        {"version": 2},
        {"suite": 9},
    ],
)
def test_header_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(make_header(), **changes)


def test_header_accepts_plain_int_suite() -> None:
    header = dataclasses.replace(make_header(), suite=2)  # type: ignore[arg-type]
    assert header.suite is PayloadSuite.SM4_GCM


def test_sealer_refuses_other_suite_and_bad_nonce() -> None:
    sealer = FrameSealer(PayloadSuite.AES_256_GCM, new_data_key(PayloadSuite.AES_256_GCM))
    with pytest.raises(ValueError, match="suite"):
        sealer.seal(make_header(PayloadSuite.SM4_GCM), [])
    with pytest.raises(ValueError, match="nonce"):
        sealer.seal(make_header(), [], nonce=b"short")


def test_frame_size_bound() -> None:
    key = new_data_key(PayloadSuite.AES_256_GCM)
    header = make_header(first_offset=0, last_offset=10)
    overhead = frame_overhead(header) + ENTRIES_OVERHEAD
    probe = FrameEntry(7, "t", 3, 0, "r", 0, b"")
    fits = FrameEntry(7, "t", 3, 0, "r", 0, bytes(MAX_FRAME_BYTES - overhead - entry_size(probe)))
    assert len(seal_frame(header, [fits], key)) == MAX_FRAME_BYTES
    too_big = dataclasses.replace(fits, payload=fits.payload + b"x")
    with pytest.raises(FrameTooLargeError, match="split"):
        seal_frame(header, [too_big], key)


def test_encode_rejects_out_of_range_fields() -> None:
    entry = make_entries(1)[0]
    changes: dict[str, Any]
    for changes in ({"schema_id": 2**31}, {"offset": 2**63}, {"record_id": "x" * 70_000}):
        with pytest.raises(ValueError):
            encode_entries([dataclasses.replace(entry, **changes)])


def test_entries_round_trip_with_unicode_and_empty_fields() -> None:
    entries = [
        FrameEntry(0, "", 0, 0, "", 0, b""),
        FrameEntry(
            2**31 - 1, "govhub.src.民政局.低保", 2**31 - 1, 2**63 - 1, "记录-1", -1, b"\x00"
        ),
    ]
    assert decode_entries(encode_entries(entries)) == entries


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x01",
        b"\xff\xff\xff\xff" + bytes(64),
        b"\x00\x00\x00\x00\x00",
    ],
)
def test_decode_entries_rejects_garbage(data: bytes) -> None:
    with pytest.raises(FrameFormatError):
        decode_entries(data)


def test_decode_entries_rejects_bad_utf8() -> None:
    encoded = bytearray(encode_entries([FrameEntry(1, "ab", 0, 0, "cd", 0, b"")]))
    encoded[ENTRIES_OVERHEAD + 32] = 0xFF
    with pytest.raises(FrameFormatError, match="UTF-8"):
        decode_entries(bytes(encoded))


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"GHDF",
        b"XXXX" + bytes(100),
        b"GHDF\x02" + bytes(100),
        b"GHDF\x01\x07" + bytes(100),
    ],
)
def test_peek_header_rejects_garbage(frame: bytes) -> None:
    with pytest.raises(FrameFormatError):
        peek_header(frame)


def test_all_errors_are_crypto_errors() -> None:
    for error in (FrameAuthError, FrameFormatError, WrongRecipientError, UnknownKeyError):
        assert issubclass(error, CryptoError)
