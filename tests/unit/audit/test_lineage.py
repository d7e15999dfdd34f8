"""What the delivery audit keeps of a frame: record ids, their digest, source offsets."""

from __future__ import annotations

import hashlib
import struct

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.audit.digest import FrameLineage, hasher, record_ids_digest, runs
from hub.audit.query import Row

_ENTRY = struct.Struct(">iiqqHHI")  # the router's entry header (hub/router/batch.py)


def block(entries: list[tuple[int, int, str]], topic: bytes = b"t.govhub.src.mzj.dibao") -> bytes:
    parts = [struct.pack(">I", len(entries))]
    for schema, offset, rid in entries:
        rb = rid.encode()
        payload = b"\x02avro" * (offset % 3)
        parts.append(_ENTRY.pack(schema, 1, offset, 17, len(topic), len(rb), len(payload)))
        parts += [topic, rb, payload]
    return b"".join(parts)


def test_frame_lineage_reads_every_entry() -> None:
    ids = ["r-9", "记录-1", "r\n2", "r-3"]
    lineage = FrameLineage(
        block([(5, 10, ids[0]), (5, 11, ids[1]), (6, 12, ids[2]), (5, 20, ids[3])])
    )
    assert lineage.record_ids == ids
    assert lineage.offsets == [[10, 12], [20, 20]]
    assert lineage.view_schemas == [5, 6]
    expected = hashlib.sha256(orjson.dumps(sorted(ids))).hexdigest()
    assert lineage.digest == expected == record_ids_digest(list(reversed(ids)))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**31), 2**31 - 1),
            st.integers(0, 40),
            st.text(max_size=20).filter(lambda t: len(t.encode()) < 60000),
        ),
        max_size=30,
    ),
    st.data(),
)
def test_native_lineage_equals_the_python_reference(
    entries: list[tuple[int, int, str]], data: st.DataObject
) -> None:
    # Ascending offsets as a block holds them, with gaps.
    ascending, offset = [], 0
    for schema, step, rid in entries:
        offset += 1 + step % 3
        ascending.append((schema, offset, rid))
    raw = block(ascending)
    native = FrameLineage(raw)
    python = FrameLineage(raw, native=False)
    assert (native.record_ids, native.offsets, native.view_schemas, native.digest) == (
        python.record_ids,
        python.offsets,
        python.view_schemas,
        python.digest,
    )
    # A damaged block is a ValueError (UnicodeDecodeError is one) either way, never a crash.
    cut = data.draw(st.integers(0, max(0, len(raw) - 1)))
    flip = data.draw(st.integers(0, max(0, len(raw) - 1)))
    for damaged in (raw[:cut], raw[:flip] + bytes([raw[flip] ^ 0xFF]) + raw[flip + 1 :]):
        outcomes = []
        for use_native in (True, False):
            try:
                got = FrameLineage(damaged, native=use_native)
                outcomes.append((got.record_ids, got.offsets, got.view_schemas))
            except ValueError:
                outcomes.append("ValueError")
        assert outcomes[0] == outcomes[1]


def test_sm3_digest_is_the_standard_one() -> None:
    # GB/T 32905 example: SM3("abc")
    assert hasher("sm3")(b"abc") == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    lineage = FrameLineage(block([(1, 0, "a"), (1, 1, "b")]), digest=hasher("sm3"))
    assert lineage.digest == record_ids_digest(["b", "a"], "sm3")


def test_runs_and_row_offsets() -> None:
    assert runs([]) == []
    assert runs([4, 5, 6]) == [[4, 6]]
    assert runs([1, 3, 4, 9]) == [[1, 1], [3, 4], [9, 9]]
    row = Row(
        "delivery",
        0,
        "e",
        0,
        0,
        "router",
        "deliver",
        record_ids=["a", "b", "c", "d"],
        source_offsets=[[1, 1], [3, 4], [9, 9]],
    )
    assert [row.offset_of(r) for r in "abcd"] == [1, 3, 4, 9]
    assert row.offset_of("zz") is None


def test_served_event_is_a_delivery_row_with_its_lineage() -> None:
    from hub.audit.events import served_event
    from hub.audit.query import rows_of

    event = served_event(
        "dataservice-0",
        "dataservice.lookup",
        recipient="jianwai",
        resource="dibao",
        subscription="sub-jianwai-dibao",
        record_ids=["b", "a"],
        view_schemas=[7],
    )
    (row,) = rows_of(0, 5, orjson.dumps(event))
    assert (row.kind, row.action, row.actor, row.recipient) == (
        "delivery",
        "dataservice.lookup",
        "dataservice-0",
        "jianwai",
    )
    assert row.record_ids == ["b", "a"] and row.ids_digest == record_ids_digest(["a", "b"])
    assert row.offset_of("a") is None and row.source_offsets == []


def test_hostile_audit_values_become_readable_rows_or_unreadable_ones() -> None:
    from hub.audit.query import rows_of

    weird = {
        "kind": "delivery",
        "fields": ["recipient", "offsets", "view_schemas", "record_ids", "source_partition"],
        "frames": [["x", [[1, "2"], "zz", [3, 4]], [1, "a", True], ["r"], "p"]],
    }
    (row,) = rows_of(0, 0, orjson.dumps(weird))
    assert row.source_offsets == [[3, 4]] and row.view_schemas == [1]
    assert row.source_partition is None and row.offset_of("r") == 3
    for value in (b"", b"[]", b'{"kind": "delivery", "fields": 1, "frames": 2}', b"\xff"):
        (bad,) = rows_of(0, 1, value)
        assert bad.kind == "unreadable"


def test_data_service_calls_and_unknown_kinds_are_listed() -> None:
    from hub.audit.query import rows_of

    chunk = {
        "v": 1,
        "kind": "data-service-calls",
        "node": "ds-0",
        "events": [
            {
                "kind": "data-service-call",
                "at_ms": 5,
                "caller": "rsj",
                "subscription": "s",
                "resource": "dibao",
                "call": "get",
                "key_count": 1,
                "keys_sha256": "ab",
                "results": 1,
                "outcome": "ok",
                "policy_version": "7",
            },
        ],
    }
    (call,) = rows_of(1, 2, orjson.dumps(chunk))
    assert (call.kind, call.action, call.recipient, call.record_count) == (
        "call",
        "dataservice.get",
        "rsj",
        1,
    )
    (other,) = rows_of(1, 3, orjson.dumps({"kind": "future-thing", "at_ms": 9}))
    assert (other.kind, other.action, other.at_ms) == ("future-thing", "future-thing", 9)
