from __future__ import annotations

import json

import pytest

from hub.crypto import CryptoError, FrameReplayError, FrameSequenceChecker

from .builders import make_header


def test_in_order_frames_pass() -> None:
    checker = FrameSequenceChecker()
    for first, last in [(0, 9), (10, 10), (15, 40)]:
        header = make_header(first_offset=first, last_offset=last)
        checker.check(header)
        checker.record(header)
    assert checker.last_offset("enterprise-registration", "sub-0001", 3) == 40


@pytest.mark.parametrize("first, last", [(0, 9), (5, 12), (9, 20)])
def test_replay_and_reorder_are_refused(first: int, last: int) -> None:
    checker = FrameSequenceChecker()
    checker.record(make_header(first_offset=0, last_offset=9))
    with pytest.raises(FrameReplayError, match="replayed or re-ordered"):
        checker.check(make_header(first_offset=first, last_offset=last))


def test_positions_are_independent() -> None:
    checker = FrameSequenceChecker()
    checker.record(make_header(first_offset=0, last_offset=9))
    checker.check(make_header(partition=4, first_offset=0, last_offset=9))
    checker.check(make_header(resource="household", first_offset=0, last_offset=9))
    # the same source records, delivered under a second subscription (another view)
    checker.check(make_header(subscription="sub-0002", first_offset=0, last_offset=9))


def test_check_does_not_record() -> None:
    checker = FrameSequenceChecker()
    header = make_header(first_offset=0, last_offset=9)
    checker.check(header)
    checker.check(header)
    checker.record(header)
    with pytest.raises(FrameReplayError):
        checker.check(header)


def test_record_never_moves_backwards() -> None:
    checker = FrameSequenceChecker()
    checker.record(make_header(first_offset=10, last_offset=20))
    checker.record(make_header(first_offset=0, last_offset=5))
    assert checker.last_offset("enterprise-registration", "sub-0001", 3) == 20


def test_state_round_trips_through_json() -> None:
    checker = FrameSequenceChecker()
    checker.record(make_header(first_offset=0, last_offset=9))
    checker.record(make_header(partition=0, subscription="订阅-2", first_offset=3, last_offset=4))
    restored = FrameSequenceChecker.from_dict(json.loads(json.dumps(checker.to_dict())))
    assert restored.to_dict() == checker.to_dict()
    with pytest.raises(FrameReplayError):
        restored.check(make_header(first_offset=9, last_offset=9))
    restored.check(make_header(first_offset=10, last_offset=10))
    assert FrameSequenceChecker(checker.to_dict()).to_dict() == checker.to_dict()


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"v": 2, "last": []},
        {"v": 1, "last": [["r", "s", "0", 1]]},
        {"v": 1, "last": [["r", "s", 0]]},
        {"v": 1, "last": [["r", "s", 0, -1]]},
        {"v": 1, "last": ["rs01"]},
        {"v": 1, "last": 5},
    ],
)
def test_bad_state_is_refused(state: dict[str, object]) -> None:
    with pytest.raises(CryptoError):
        FrameSequenceChecker.from_dict(state)
