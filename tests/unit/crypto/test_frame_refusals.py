"""Frames moved to another recipient or delivered twice are refused (real AEAD, no mocks).

The header is the AEAD's associated data, so re-addressing a frame — keeping its
ciphertext and writing another recipient into its header — breaks the tag even for whoever
holds the data key; a frame played again, byte for byte or re-sealed over the same source
offsets, is caught by the subscriber's sequence check, also after a restart from the
stored cursor.
"""

from __future__ import annotations

import dataclasses

import pytest

from hub.crypto import (
    FrameAuthError,
    FrameReplayError,
    FrameSequenceChecker,
    PayloadSuite,
    WrongRecipientError,
    new_data_key,
    open_frame,
    peek_header,
    seal_frame,
)

from .builders import RECIPIENT, make_entries, make_header

OTHER_SAME_LENGTH = "330106001001"  # a neighbouring community
OTHER_LONGER = "dept-other-recipient"


def readdress(frame: bytes, recipient: str) -> bytes:
    """The frame with ``recipient`` written into its header, ciphertext untouched."""
    header = peek_header(frame)
    clear_len = len(header.to_bytes())
    moved = dataclasses.replace(header, recipient=recipient)
    return moved.to_bytes() + frame[clear_len:]


@pytest.mark.parametrize("other", [OTHER_SAME_LENGTH, OTHER_LONGER])
def test_a_readdressed_frame_fails_authentication(suite: PayloadSuite, other: str) -> None:
    key = new_data_key(suite)
    frame = seal_frame(make_header(suite), make_entries(), key)
    moved = readdress(frame, other)
    assert peek_header(moved).recipient == other
    # Even the holder of the data key cannot open it as the new recipient ...
    with pytest.raises(FrameAuthError):
        open_frame(moved, other, lambda _key_id: key)
    # ... and the original recipient no longer accepts it as its own.
    with pytest.raises(WrongRecipientError):
        open_frame(moved, RECIPIENT, lambda _key_id: key)
    # The untouched frame still opens for its recipient: only the move broke it.
    header, entries = open_frame(frame, RECIPIENT, lambda _key_id: key)
    assert header.recipient == RECIPIENT and len(entries) == 3


def test_another_recipients_frame_is_refused_before_any_key_is_asked() -> None:
    key = new_data_key(PayloadSuite.AES_256_GCM)
    frame = seal_frame(make_header(recipient=OTHER_SAME_LENGTH), make_entries(), key)
    asked: list[bytes] = []

    def key_for(key_id: bytes) -> bytes:
        asked.append(key_id)
        return key

    with pytest.raises(WrongRecipientError):
        open_frame(frame, RECIPIENT, key_for)
    assert asked == []


def _receive(frame: bytes, key: bytes, sequence: FrameSequenceChecker) -> int:
    """What a subscriber does with a frame: check the order, open, then record."""
    sequence.check(peek_header(frame))
    header, entries = open_frame(frame, RECIPIENT, lambda _key_id: key)
    sequence.record(header)
    return len(entries)


def test_a_replayed_frame_is_refused_also_after_a_restart(suite: PayloadSuite) -> None:
    key = new_data_key(suite)
    first = seal_frame(
        make_header(suite, first_offset=100, last_offset=102),
        make_entries(3, first_offset=100),
        key,
    )
    second = seal_frame(
        make_header(suite, first_offset=103, last_offset=104),
        make_entries(2, first_offset=103),
        key,
    )
    sequence = FrameSequenceChecker()
    assert _receive(first, key, sequence) == 3
    assert _receive(second, key, sequence) == 2
    # The same bytes again: a genuine frame, authentic, but already processed.
    with pytest.raises(FrameReplayError):
        _receive(first, key, sequence)
    # Re-sealed over the same source offsets (a fresh nonce, so other bytes): still a replay.
    again = seal_frame(
        make_header(suite, first_offset=103, last_offset=104),
        make_entries(2, first_offset=103),
        key,
    )
    assert again != second
    with pytest.raises(FrameReplayError):
        _receive(again, key, sequence)
    # The subscriber restarts from the cursor its sink stored: the replay is still caught.
    restored = FrameSequenceChecker.from_dict(sequence.to_dict())
    with pytest.raises(FrameReplayError):
        _receive(second, key, restored)
    later = seal_frame(
        make_header(suite, first_offset=105, last_offset=105),
        make_entries(1, first_offset=105),
        key,
    )
    assert _receive(later, key, restored) == 1
