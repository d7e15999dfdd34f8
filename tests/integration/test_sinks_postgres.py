"""The PostgreSQL sink against a real server: exactly once, fencing, rejects, outages."""

from __future__ import annotations

import asyncio
import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from connectors.base import Backpressure
from connectors.sinks.base import Cursor, DeliveredRecord
from connectors.sinks.postgres import PostgresSink, PostgresSinkConfig
from connectors.sinks.state import SinkStateError
from hub.config import ConfigError
from tests.pg_fixtures import PostgresServer

pytestmark = pytest.mark.integration

SEQ = {"v": 1, "last": []}


def rec(i: int, **data: Any) -> DeliveredRecord:
    fields: dict[str, Any] = {
        "id_card": f"id{i % 5}",
        "name": f"张{i}",
        "amount": Decimal(f"{i}.50"),
        "approved_on": datetime.date(2026, 1, 1 + i % 28),
    }
    fields.update(data)
    return DeliveredRecord("dibao", "sub-rsj", f"r{i}", "src", 0, i, 1_700_000_000_000, 0, fields)


def query(dsn: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def sink(dsn: str, name: str = "rsj-dibao", **settings: Any) -> PostgresSink:
    config = {"dsn": dsn, "table": "dibao", "key": ["id_card"], "create_tables": True}
    config.update(settings)
    return PostgresSink(name, PostgresSinkConfig.model_validate(config))


def test_upserts_by_key_and_keeps_the_cursor_with_the_rows(pg_database: str) -> None:
    s = sink(pg_database)
    assert s.load_cursor() is None
    s.write([rec(1), rec(2), rec(6)], Cursor(0, 7, SEQ))  # r6 updates r1 (same key id1)
    s.write([], Cursor(0, 9, SEQ))
    s.close()
    rows = query(pg_database, "SELECT id_card, name, amount, approved_on, _record_id FROM dibao")
    assert sorted((r[0], r[1], r[2], r[4]) for r in rows) == [
        ("id1", "张6", Decimal("6.50"), "r6"),
        ("id2", "张2", Decimal("2.50"), "r2"),
    ]
    types = dict(
        query(
            pg_database,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'dibao'",
        )
    )
    assert types["amount"] == "numeric" and types["approved_on"] == "date"
    again = sink(pg_database)
    assert again.load_cursor() == Cursor(0, 9, SEQ)
    again.close()


def test_a_failed_transaction_leaves_rows_and_cursor_as_they_were(pg_database: str) -> None:
    s = sink(pg_database)
    s.load_cursor()
    s.write([rec(1)], Cursor(0, 2, SEQ))

    async def broken(*args: Any) -> Any:
        raise ConnectionResetError("link dropped mid-transaction")

    original = s._upsert
    s._upsert = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(Backpressure, match="PostgreSQL unreachable"):
        s.write([rec(2), rec(3)], Cursor(0, 4, SEQ))
    s._upsert = original  # type: ignore[method-assign]
    assert query(pg_database, "SELECT count(*) FROM dibao")[0][0] == 1
    assert s.load_cursor() == Cursor(0, 2, SEQ)
    s.write([rec(2), rec(3)], Cursor(0, 4, SEQ))  # the SDK's retry of the same batch
    assert query(pg_database, "SELECT count(*) FROM dibao")[0][0] == 3
    s.close()


def test_a_batch_committed_before_the_answer_was_lost_is_not_applied_twice(
    pg_database: str,
) -> None:
    s = sink(pg_database, layout="jsonb")
    s.load_cursor()
    s.write([rec(1, name="first")], Cursor(0, 2, SEQ))
    s.write([rec(6, name="second")], Cursor(0, 7, SEQ))
    s._expected = (0, 2)  # as if the commit of the second batch was never confirmed
    s.write([rec(6, name="second")], Cursor(0, 7, SEQ))
    assert s.records_written == 2
    data = query(pg_database, "SELECT data->>'name' FROM dibao")
    assert [r[0] for r in data] == ["second"]
    s.close()


def test_two_writers_with_one_name_are_fenced(pg_database: str) -> None:
    a, b = sink(pg_database), sink(pg_database)
    a.load_cursor()
    b.load_cursor()
    a.write([rec(1)], Cursor(0, 2, SEQ))
    with pytest.raises(SinkStateError, match="another process"):
        b.write([rec(2)], Cursor(0, 3, SEQ))
    a.close()
    b.close()


def test_refused_records_go_to_the_rejected_table(pg_database: str) -> None:
    query(
        pg_database,
        "CREATE TABLE dibao (id_card text PRIMARY KEY, name text, "
        "amount numeric(4,2) CHECK (amount < 50), approved_on date)",
    )
    s = sink(pg_database)
    s.load_cursor()
    s.write([rec(1), rec(77), rec(2, id_card=None)], Cursor(0, 3, SEQ))
    s.close()
    assert [r[0] for r in query(pg_database, "SELECT id_card FROM dibao")] == ["id1"]
    rejected = query(pg_database, "SELECT record_id, error FROM dibao_rejected ORDER BY id")
    assert [r[0] for r in rejected] == ["r77", "r2"]
    assert "check constraint" in rejected[0][1] and "null" in rejected[1][1].lower()
    assert s.records_written == 1 and s.records_rejected == 2


def test_new_fields_add_columns_or_stop_clearly(pg_database: str) -> None:
    s = sink(pg_database)
    s.load_cursor()
    s.write([rec(1)], Cursor(0, 2, SEQ))
    s.write([rec(2, address="北京")], Cursor(0, 3, SEQ))
    s.close()
    assert query(pg_database, "SELECT address FROM dibao WHERE id_card = 'id2'")[0][0] == "北京"
    strict = sink(pg_database, create_tables=False)
    strict.load_cursor()
    with pytest.raises(SinkStateError, match=r"no column for field.*grade"):
        strict.write([rec(3, grade=1)], Cursor(0, 4, SEQ))
    assert strict.load_cursor() == Cursor(0, 3, SEQ)
    strict.close()
    lenient = sink(pg_database, create_tables=False, ignore_unknown_fields=True)
    lenient.load_cursor()
    lenient.write([rec(3, grade=1)], Cursor(0, 4, SEQ))
    lenient.close()


def test_configuration_problems_name_the_fix(pg_database: str) -> None:
    with pytest.raises(ConfigError, match="govhub_sink_cursors does not exist; set create_tables"):
        sink(pg_database, create_tables=False)
    sink(pg_database, table="other").close()  # creates the bookkeeping tables
    with pytest.raises(ConfigError, match=r"sink\.table: dibao does not exist; create it"):
        sink(pg_database, create_tables=False, rejected_table="other_rejected")
    query(pg_database, "CREATE TABLE nokey (id_card text, name text)")
    with pytest.raises(ConfigError, match="needs a PRIMARY KEY or UNIQUE index"):
        sink(pg_database, table="nokey")


def test_outage_is_backpressure_then_recovers(pg_database: str, pg_server: PostgresServer) -> None:
    if pg_server.folder is None:
        pytest.skip("needs the private test server (PG_TEST_DSN is set)")
    s = sink(pg_database)
    s.load_cursor()
    s.write([rec(1)], Cursor(0, 2, SEQ))
    pg_server.stop("immediate")
    try:
        with pytest.raises(Backpressure):
            s.write([rec(2)], Cursor(0, 3, SEQ))
    finally:
        pg_server.start()
    s.write([rec(2)], Cursor(0, 3, SEQ))
    assert s.load_cursor() == Cursor(0, 3, SEQ)
    assert query(pg_database, "SELECT count(*) FROM dibao")[0][0] == 2
    s.close()


def test_a_log_keyed_by_record_id_for_masked_views(pg_database: str) -> None:
    s = sink(pg_database, key=["_record_id"], layout="jsonb")
    s.load_cursor()
    s.write(
        [rec(1, id_card="110105********0021"), rec(6, id_card="110105********0021")],
        Cursor(0, 7, SEQ),
    )
    s.close()
    rows = query(pg_database, "SELECT _record_id, data->>'id_card' FROM dibao ORDER BY 1")
    assert [r[0] for r in rows] == ["r1", "r6"]
