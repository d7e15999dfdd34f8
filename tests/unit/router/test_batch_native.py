"""The native batch loop against its Python reference: same blocks, dead letters and stats
for the same input, including every malformed-input case and the frame bounds."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.crypto.frames import decode_entries
from hub.router import batch

pytestmark = pytest.mark.skipif(not batch.NATIVE, reason="native batch loop not built")


@dataclass
class Msg:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _headers: list[tuple[str, bytes]] | None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


class Rejected(Exception):
    pass


def upper(payload: bytes) -> bytes | None:
    return payload.upper()


def drop_odd(payload: bytes) -> bytes | None:
    return None if payload[-1] % 2 else payload


def fail_on_x(payload: bytes) -> bytes | None:
    if b"x" in payload:
        raise Rejected("x is not allowed")
    return payload[::-1]


def resolver(topic: str, region: bytes, schema_id: int) -> Any:
    if topic == "unknown":
        return Rejected(f"no resource for {topic}")
    if region.startswith(b"9"):
        return (1, ())  # unrouted
    views = [(None, schema_id, (0, 1)), (upper, 77, (2,)), (drop_odd, 78, (3, 4))]
    if region.startswith(b"11"):
        views.append((fail_on_x, 79, (5,)))
    return (0 if topic == "a" else 2, tuple(views))


def framed(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def normal(topic: str, partition: int, offset: int, region: bytes, payload: bytes) -> Msg:
    return Msg(
        topic,
        partition,
        offset,
        framed(5, payload),
        [
            ("govhub-region", region),
            ("govhub-record-id", f"r-{topic}-{partition}-{offset}".encode()),
            ("govhub-ingested-at", str(1_700_000_000_000 + offset).encode()),
            ("other", b"ignored"),
        ],
    )


def run(fn: batch.RouteFn, msgs: list[Msg], max_entries: int, max_bytes: int) -> Any:
    blocks, dead, stats = fn(list(msgs), {}, resolver, max_entries, max_bytes)
    dead_norm = [
        (i, p if isinstance(p, str) else (type(p).__name__, str(p)), d) for i, p, d in dead
    ]
    return sorted(blocks), sorted(dead_norm, key=lambda x: x[0]), stats


def both(msgs: list[Msg], max_entries: int = 500, max_bytes: int = 512_000) -> Any:
    native = run(batch.route, msgs, max_entries, max_bytes)
    python = run(batch.route_python, msgs, max_entries, max_bytes)
    assert native == python
    return native


def test_blocks_are_frame_plaintexts_in_offset_order() -> None:
    msgs = [normal("a", i % 2, i, b"110105001001", b"abc%d" % i) for i in range(40)]
    blocks, dead, stats = both(msgs)
    assert dead == []
    assert stats[0] == (40, 0, 1_700_000_000_000)
    for slot, partition, block, count, first, last in blocks:
        entries = decode_entries(block)
        assert len(entries) == count and entries[0].offset == first and entries[-1].offset == last
        assert all(e.partition == partition for e in entries)
        assert [e.offset for e in entries] == sorted(e.offset for e in entries)
        if slot == 2:
            assert all(e.payload == e.payload.upper() and e.schema_id == 77 for e in entries)
        if slot in (0, 1):
            assert all(e.schema_id == 5 for e in entries)


def test_frame_bounds_split_blocks() -> None:
    msgs = [normal("a", 0, i, b"120105001001", b"p" * 40 + bytes([i % 2])) for i in range(50)]
    for max_entries, max_bytes in ((7, 512_000), (500, 300), (3, 200), (1, 64)):
        blocks, _, _ = both(msgs, max_entries, max_bytes)
        for _, _, block, count, _, _ in blocks:
            assert count <= max_entries
            assert len(block) <= max(max_bytes, 4 + 32 + 1 + 20 + 41) or count == 1


def test_bad_input_is_dead_lettered_with_the_reason() -> None:
    good = normal("a", 0, 0, b"110105001001", b"ok")
    cases = [
        Msg("a", 0, 1, framed(5, b"v"), None),
        Msg("a", 0, 2, framed(5, b"v"), [("govhub-record-id", b"x")]),
        Msg("a", 0, 3, framed(5, b"v"), [("govhub-region", b"110105001001")]),
        Msg(
            "a",
            0,
            4,
            framed(5, b"v"),
            [("govhub-region", b"1"), ("govhub-record-id", b"r"), ("govhub-ingested-at", b"1x")],
        ),
        Msg("a", 0, 5, framed(5, b"v"), [("govhub-region", b"1"), ("govhub-record-id", b"\xff")]),
        Msg("a", 0, 6, None, [("govhub-region", b"1"), ("govhub-record-id", b"r")]),
        Msg(
            "a",
            0,
            7,
            b"\x01\x00\x00\x00\x05v",
            [("govhub-region", b"1"), ("govhub-record-id", b"r")],
        ),
        Msg("a", 0, 8, b"\x00\x00", [("govhub-region", b"1"), ("govhub-record-id", b"r")]),
        normal("unknown", 0, 9, b"110105001001", b"ok"),
        normal("a", 0, 10, b"110105001001", b"has x"),  # a shaper raises
        Msg("a", 0, 11, framed(5, b"v"), [("govhub-region", b"1"), ("govhub-record-id", b"")]),
    ]
    blocks, dead, stats = both([good, *cases])
    reasons = {i: p for i, p, _ in dead}
    assert reasons == {
        1: "missing-region",
        2: "missing-region",
        3: "missing-record-id",
        4: "bad-header",
        5: "bad-header",
        6: "empty-value",
        7: "bad-framing",
        8: "bad-framing",
        9: ("Rejected", "no resource for unknown"),
        10: ("Rejected", "x is not allowed"),
        11: "missing-record-id",
    }
    # The record a shaper refused reached no recipient at all.
    delivered = {e.offset for block in blocks for e in decode_entries(block[2])}
    assert 10 not in delivered and 0 in delivered
    assert stats[0][0] == 2  # the good record and the one a shaper refused


region_st = st.sampled_from([b"110105001001", b"120105001001", b"910000000000", b"110105002002"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(0, 3),
            region_st,
            st.binary(min_size=0, max_size=60),
        ),
        max_size=120,
    ),
    st.integers(1, 20),
    st.integers(64, 2000),
)
def test_native_equals_python_on_random_batches(
    rows: list[tuple[str, int, bytes, bytes]], max_entries: int, max_bytes: int
) -> None:
    msgs = [normal(t, p, i, r, payload) for i, (t, p, r, payload) in enumerate(rows)]
    both(msgs, max_entries, max_bytes)


def test_the_plan_cache_is_filled_once_per_key() -> None:
    calls: list[tuple[str, bytes, int]] = []

    def counting(topic: str, region: bytes, schema_id: int) -> Any:
        calls.append((topic, region, schema_id))
        return resolver(topic, region, schema_id)

    cache: dict[Any, Any] = {}
    msgs = [normal("a", 0, i, b"120105001001", b"z") for i in range(30)]
    batch.route(list(msgs), cache, counting, 500, 512_000)
    batch.route(list(msgs), cache, counting, 500, 512_000)
    assert calls == [("a", b"120105001001", 5)]
