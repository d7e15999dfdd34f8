import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.registry.framing import FramingError, frame, unframe


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=200))
def test_round_trip(schema_id: int, payload: bytes) -> None:
    sid, body = unframe(frame(schema_id, payload))
    assert sid == schema_id and bytes(body) == payload


@given(st.binary(max_size=12))
def test_garbage_gives_a_typed_error_or_a_frame(data: bytes) -> None:
    with contextlib.suppress(FramingError):
        unframe(data)


def test_specific_errors() -> None:
    with pytest.raises(FramingError, match="shorter"):
        unframe(b"\x00\x00")
    with pytest.raises(FramingError, match="magic"):
        unframe(b"\x01\x00\x00\x00\x01abc")
