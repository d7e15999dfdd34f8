"""Confluent framing: any bytes give the (schema id, payload) they encode or FramingError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.registry.framing import FramingError, frame, unframe

from .conftest import PROPS


@settings(PROPS)
@given(st.integers(0, 2**32 - 1), st.binary(max_size=300))
def test_round_trip(schema_id: int, payload: bytes) -> None:
    sid, body = unframe(frame(schema_id, payload))
    assert (sid, bytes(body)) == (schema_id, payload)


@settings(PROPS)
@given(st.binary(max_size=40))
def test_any_bytes_give_their_own_framing_or_a_typed_error(data: bytes) -> None:
    try:
        sid, body = unframe(data)
    except FramingError:
        assert len(data) < 5 or data[0] != 0
        return
    # Accepted only when re-framing gives the same bytes: never a wrong reading.
    assert frame(sid, bytes(body)) == data
