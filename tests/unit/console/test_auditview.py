"""Delivery audit rows as the router writes them, parsed and matched for the audit page."""

from __future__ import annotations

import orjson

from hub.console.auditview import (
    AuditQuery,
    DeliveryRow,
    SourcePosition,
    _matches,
    parse_delivery_rows,
)

# The columns every router writes; newer routers add offset runs and record ids.
BASE_COLUMNS = (
    "recipient",
    "subscription",
    "resource",
    "source_partition",
    "first_offset",
    "last_offset",
    "entries",
    "key_id",
    "tag",
)


def audit_record(
    frames: list[list[object]], kind: str = "delivery", columns: tuple[str, ...] = BASE_COLUMNS
) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "kind": kind,
            "router": "router-1",
            "at_ms": 1_000,
            "fields": columns,
            "frames": frames,
        }
    )


FRAME = ["wjw", "sub-1", "dibao", 2, 10, 14, 5, "ab" * 16, "cd" * 8]


def test_rows_follow_the_routers_columns() -> None:
    (row,) = parse_delivery_rows(audit_record([FRAME]))
    assert row == DeliveryRow(
        1_000, "router-1", "wjw", "sub-1", "dibao", 2, 10, 14, 5, "ab" * 16, "cd" * 8
    )
    assert row.covers(2, 10) and row.covers(2, 14)
    assert not row.covers(2, 15) and not row.covers(1, 12)


def test_other_kinds_and_malformed_input_give_no_rows() -> None:
    assert parse_delivery_rows(audit_record([FRAME], kind="control")) == []
    assert parse_delivery_rows(b"not json") == []
    assert parse_delivery_rows(audit_record([FRAME[:3], [*FRAME[:3], "x", *FRAME[4:]]])) == []


def test_matching_by_subscriber_resource_time_and_record_position() -> None:
    (row,) = parse_delivery_rows(audit_record([FRAME]))
    assert _matches(row, AuditQuery(subscriber="wjw", resource="dibao"), None)
    assert not _matches(row, AuditQuery(subscriber="rsj"), None)
    assert not _matches(row, AuditQuery(since_ms=1_001), None)
    assert not _matches(row, AuditQuery(until_ms=999), None)
    inside = SourcePosition("dibao", "t", 2, 12, "110105001001", None)
    outside = SourcePosition("dibao", "t", 2, 15, "110105001001", None)
    assert _matches(row, AuditQuery(record_id="r"), inside)
    assert not _matches(row, AuditQuery(record_id="r"), outside)


def test_rows_with_record_ids_and_offset_runs_match_exactly() -> None:
    # A row filter thinned the frame out: offsets 10-11 and 14 only, range 10..14.
    frame = [*FRAME[:6], 3, *FRAME[7:], [[10, 11], [14, 14]], ["r10", "r11", "r14"]]
    (row,) = parse_delivery_rows(
        audit_record([frame], columns=(*BASE_COLUMNS, "offsets", "record_ids"))
    )
    assert row.offsets == ((10, 11), (14, 14)) and row.record_ids == ("r10", "r11", "r14")
    assert row.covers(2, 11) and row.covers(2, 14) and not row.covers(2, 12)
    assert _matches(row, AuditQuery(record_id="r14"), None)
    assert not _matches(row, AuditQuery(record_id="r12"), None)
    # A record id the row does not list does not match by position either.
    filtered_out = SourcePosition("dibao", "t", 2, 12, "110105001001", None)
    assert not _matches(row, AuditQuery(record_id="r12"), filtered_out)


def test_router_columns_are_a_superset_of_what_the_console_reads() -> None:
    from hub.router.engine import AUDIT_FIELDS

    assert set(BASE_COLUMNS) <= set(AUDIT_FIELDS)
