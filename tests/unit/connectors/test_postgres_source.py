import datetime
import uuid
from decimal import Decimal

import pytest
from pydantic import ValidationError

from connectors.sources.postgres import (
    Column,
    Position,
    PostgresSourceConfig,
    TableShape,
    high_water_query,
    last_key_query,
    page_query,
    quote_table,
    to_json_value,
)
from hub.config import ConfigError

SHAPE = TableShape(
    "public.dibao",
    (Column("id", "bigint"),),
    Column("updated_at", "timestamp with time zone"),
    (("id_card", "sfzh"), ("name", "xm")),
)


def test_snapshot_pages_follow_the_primary_key() -> None:
    sql, args = page_query(SHAPE, Position("snapshot"), 100)
    assert sql == (
        'SELECT "id"::text AS _k0, "updated_at"::text AS _c, "sfzh" AS _f0, "xm" AS _f1 '
        'FROM "public"."dibao" WHERE "updated_at" IS NULL ORDER BY "id" LIMIT $1'
    )
    assert args == [100]
    sql, args = page_query(SHAPE, Position("snapshot", ("42",)), 100)
    assert 'WHERE ("id") > ($1::text::bigint) AND "updated_at" IS NULL ORDER BY "id"' in sql
    assert args == ["42", 100]


def test_a_snapshot_leaves_rows_past_its_high_water_mark_to_the_incremental_phase() -> None:
    position = Position("snapshot", ("3",), high_water=("2026-01-01 00:00:00+00", ("8",)))
    sql, args = page_query(SHAPE, position, 5)
    assert (
        '("updated_at" IS NULL OR ("updated_at", "id") <= '
        "($2::text::timestamp with time zone, $3::text::bigint))"
    ) in sql
    assert args == ["3", "2026-01-01 00:00:00+00", "8", 5]


def test_incremental_pages_compare_cursor_and_key_together() -> None:
    # Equal timestamps: the row comparison continues inside a timestamp by key, so a page
    # boundary between rows that share updated_at neither skips nor repeats a row.
    position = Position("incremental", ("7",), "2026-01-01 00:00:00+00")
    sql, args = page_query(SHAPE, position, 10)
    assert (
        'WHERE ("updated_at", "id") > ($1::text::timestamp with time zone, $2::text::bigint)' in sql
    )
    assert sql.endswith('ORDER BY "updated_at", "id" LIMIT $3')
    assert args == ["2026-01-01 00:00:00+00", "7", 10]


def test_incremental_from_the_start_skips_rows_without_cursor() -> None:
    sql, _ = page_query(SHAPE, Position("incremental"), 10)
    assert 'WHERE "updated_at" IS NOT NULL' in sql


def test_settle_and_filter() -> None:
    shape = TableShape(SHAPE.table, SHAPE.key, SHAPE.cursor, SHAPE.fields, "status <> 'draft'")
    sql, args = page_query(shape, Position("incremental", ("1",), "x"), 5, settle_s=2.5)
    assert '"updated_at" <= now() - make_interval(secs => $3::float8)' in sql
    assert "AND (status <> 'draft')" in sql
    assert args == ["x", "1", 2.5, 5]


def test_composite_keys_and_no_cursor() -> None:
    shape = TableShape("t", (Column("a", "text"), Column("b", "integer")), None, (("v", "v"),))
    sql, args = page_query(shape, Position("snapshot", ("x", "2")), 3)
    assert 'WHERE ("a", "b") > ($1::text::text, $2::text::integer) ORDER BY "a", "b"' in sql
    assert "NULL::text AS _c" in sql
    assert args == ["x", "2", 3]


def test_a_snapshot_ends_at_the_last_key_present_when_it_began() -> None:
    sql, args = page_query(SHAPE, Position("snapshot", ("3",), until=("9",)), 5)
    assert 'WHERE ("id") > ($1::text::bigint) AND ("id") <= ($2::text::bigint)' in sql
    assert args == ["3", "9", 5]
    assert last_key_query(SHAPE).endswith('ORDER BY "id" DESC LIMIT 1')


def test_high_water_is_the_last_row_in_cursor_key_order() -> None:
    sql, args = high_water_query(SHAPE, settle_s=1.0)
    assert sql.endswith('ORDER BY "updated_at" DESC, "id" DESC LIMIT 1')
    assert args == [1.0]


def test_positions_round_trip_and_switch_to_incremental() -> None:
    snap = Position(
        "snapshot", ("3",), high_water=("2026-01-01 00:00:00+00", ("9",)), until=("12",)
    )
    assert Position.from_json(snap.to_json()) == snap
    assert snap.after_snapshot() == Position("incremental", ("9",), "2026-01-01 00:00:00+00")
    assert Position("snapshot").after_snapshot() == Position("incremental")
    inc = Position("incremental", ("1", "b"), "5")
    assert Position.from_json(inc.to_json()) == inc
    with pytest.raises(ConfigError, match="not a postgres source position"):
        Position.from_json({"file": "x.jsonl", "line": 3})
    with pytest.raises(ConfigError):
        Position.from_json({"phase": "snapshot", "high_water": 5})


def test_identifiers_are_quoted() -> None:
    assert quote_table('we"ird') == '"we""ird"'
    assert quote_table("s.t.x") == '"s"."t.x"'


def test_values_become_json_typed_input() -> None:
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert to_json_value(Decimal("1234.50")) == "1234.50"
    assert to_json_value(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert to_json_value(stamp) == "2026-01-02T03:04:05+00:00"
    assert to_json_value(b"\x01\x02") == "AQI="
    assert to_json_value([Decimal("1"), None]) == ["1", None]
    assert to_json_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert to_json_value(datetime.timedelta(seconds=5)) == "0:00:05"
    assert to_json_value(True) is True


def test_config_checks() -> None:
    base = {"dsn": "postgresql://u@h/db", "table": "t"}
    assert PostgresSourceConfig.model_validate(base).snapshot is True
    with pytest.raises(ValidationError, match="settle_s needs cursor_column"):
        PostgresSourceConfig.model_validate({**base, "settle_s": 1})
    with pytest.raises(ValidationError, match="extra"):
        PostgresSourceConfig.model_validate({**base, "tabel": "x"})
    secret = PostgresSourceConfig.model_validate({**base, "dsn": "postgresql://u:pw@h/db"})
    assert "pw" not in repr(secret)
