"""The PostgreSQL source against a real server (no Kafka: the runner is tested elsewhere)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from connectors.base import SourceRecord
from connectors.sources.postgres import PostgresSource, PostgresSourceConfig, SourceQueryError
from hub.catalogue.samples import load_sample
from hub.config import ConfigError
from hub.demo.world import generate_records
from hub.registry.schemas import AvroCodec
from tests.pg_fixtures import PostgresServer

pytestmark = pytest.mark.integration

DIBAO_TABLE = """
CREATE TABLE dibao (
    id bigserial PRIMARY KEY,
    sfzh char(18) NOT NULL, xm text NOT NULL, qhdm text NOT NULL, bzrs smallint NOT NULL,
    je numeric(10,2) NOT NULL, hdrq date NOT NULL, lb text NOT NULL, dz text,
    updated_at timestamptz NOT NULL DEFAULT '2026-03-01 08:00:00+08'
);
CREATE INDEX ON dibao (updated_at, id);
"""
MAPPING = {
    "id_card": "sfzh",
    "name": "xm",
    "region_code": "qhdm",
    "household_size": "bzrs",
    "amount": "je",
    "approved_on": "hdrq",
    "category": "lb",
    "address": "dz",
}


@pytest.fixture
async def db(pg_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_database)
    await conn.execute(DIBAO_TABLE)
    yield conn
    await conn.close()


async def insert_dibao(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    await conn.executemany(
        "INSERT INTO dibao (sfzh, xm, qhdm, bzrs, je, hdrq, lb, dz) "
        "VALUES ($1, $2, $3, $4, $5::text::numeric, $6::text::date, $7, $8)",
        [tuple(r[f] for f in MAPPING) for r in rows],
    )


def source(dsn: str, **settings: Any) -> PostgresSource:
    config = {"dsn": dsn, "table": "dibao", "cursor_column": "updated_at", "columns": MAPPING}
    config.update(settings)
    return PostgresSource("pg-dibao", PostgresSourceConfig.model_validate(config))


async def drain(src: PostgresSource, page: int) -> list[SourceRecord]:
    out: list[SourceRecord] = []
    while records := await src.read(page):
        out.extend(records)
    return out


async def test_snapshot_then_changes_with_equal_timestamps_across_pages(
    db: asyncpg.Connection, pg_database: str
) -> None:
    rows = generate_records(10, invalid=0)
    await insert_dibao(db, rows)  # all ten share one updated_at
    src = source(pg_database)
    await src.connect(None)
    snapshot = await drain(src, 3)  # page boundaries fall inside the shared timestamp
    assert [r.value["id_card"] for r in snapshot if r.value] == [r["id_card"] for r in rows]
    assert snapshot[0].position["phase"] == "snapshot"
    # Later: two updates and an insert, all stamped with the same instant, read in pages of 2.
    await db.execute(
        "UPDATE dibao SET je = 999.99, updated_at = '2026-03-02 00:00:00+00' WHERE id IN (3, 7)"
    )
    await insert_dibao(db, generate_records(1, seed=11, invalid=0))
    await db.execute("UPDATE dibao SET updated_at = '2026-03-02 00:00:00+00' WHERE id = 11")
    changes = await drain(src, 2)
    assert [r.record_id for r in changes] == [
        "pg-dibao:dibao:3@2026-03-02 00:00:00+00",
        "pg-dibao:dibao:7@2026-03-02 00:00:00+00",
        "pg-dibao:dibao:11@2026-03-02 00:00:00+00",
    ]
    assert changes[0].value is not None and changes[0].value["amount"] == "999.99"
    assert changes[-1].position == {
        "phase": "incremental",
        "key": ["11"],
        "cursor": "2026-03-02 00:00:00+00",
    }
    assert await src.read(5) == [] and src.lag() == 0.0
    await src.close()


async def test_rows_written_while_the_snapshot_sets_its_bounds_go_out_once(
    db: asyncpg.Connection, pg_database: str
) -> None:
    # The high-water mark is read, then a department system commits more rows, then the
    # snapshot's last key is read: those rows are below the last key and past the mark.
    await insert_dibao(db, generate_records(6, invalid=0))
    hw = await db.fetchrow("SELECT updated_at::text, id::text FROM dibao ORDER BY 1 DESC, 2 DESC")
    await db.execute("ALTER TABLE dibao ALTER COLUMN updated_at SET DEFAULT now()")
    await insert_dibao(db, generate_records(4, seed=7, invalid=0))
    until = await db.fetchval("SELECT max(id)::text FROM dibao")
    start = {
        "phase": "snapshot",
        "key": None,
        "high_water": {"cursor": hw[0], "key": [hw[1]]},
        "until": [until],
    }
    src = source(pg_database)
    await src.connect(start)
    records = await drain(src, 3)
    await src.close()
    keys = [r.position["key"][0] for r in records]
    assert sorted(keys, key=int) == [str(i) for i in range(1, 11)]
    assert len(keys) == len(set(keys)), f"rows published twice: {keys}"
    assert [r.position["phase"] for r in records] == ["snapshot"] * 6 + ["incremental"] * 4


async def test_records_fit_the_catalogue_schema(db: asyncpg.Connection, pg_database: str) -> None:
    rows = generate_records(3, invalid=0)
    await insert_dibao(db, rows)
    src = source(pg_database)
    await src.connect(None)
    records = await src.read(10)
    await src.close()
    codec = AvroCodec(load_sample("mzj.dibao").schema_json)
    for record, row in zip(records, rows, strict=True):
        assert record.value is not None
        decoded = codec.decode(codec.encode(codec.from_json(record.value)))
        assert decoded["amount"] == Decimal(row["amount"])
        assert decoded["approved_on"].isoformat() == row["approved_on"]


async def test_resume_from_a_checkpoint_gives_the_same_ids(
    db: asyncpg.Connection, pg_database: str
) -> None:
    await insert_dibao(db, generate_records(9, invalid=0))
    first = source(pg_database)
    await first.connect(None)
    all_records = await drain(first, 4)
    await first.close()
    # A crash after the 5th record was checkpointed: the rest again, with the same ids.
    resumed = source(pg_database)
    await resumed.connect(all_records[4].position)
    again = await drain(resumed, 4)
    await resumed.close()
    assert [r.record_id for r in again] == [r.record_id for r in all_records[5:]]


async def test_no_snapshot_starts_after_existing_rows(
    db: asyncpg.Connection, pg_database: str
) -> None:
    await insert_dibao(db, generate_records(4, invalid=0))
    src = source(pg_database, snapshot=False)
    await src.connect(None)
    assert await src.read(10) == []
    await db.execute("UPDATE dibao SET updated_at = now() WHERE id = 2")
    assert [r.record_id.split("@")[0] for r in await src.read(10)] == ["pg-dibao:dibao:2"]
    await src.close()


async def test_append_only_table_follows_the_key_and_reads_all_columns(
    pg_database: str,
) -> None:
    conn = await asyncpg.connect(pg_database)
    await conn.execute(
        "CREATE TABLE events (a text, b int, v jsonb, PRIMARY KEY (a, b));"
        "INSERT INTO events VALUES ('x', 2, '{\"k\": 1}'), ('x', 1, null), ('y', 1, null)"
    )
    src = PostgresSource(
        "ev", PostgresSourceConfig.model_validate({"dsn": pg_database, "table": "public.events"})
    )
    await src.connect(None)
    records = await src.read(10)
    assert [r.record_id for r in records] == [
        "ev:public.events:x/1",
        "ev:public.events:x/2",
        "ev:public.events:y/1",
    ]
    assert records[1].value == {"a": "x", "b": 2, "v": '{"k": 1}'}
    await conn.execute("INSERT INTO events VALUES ('z', 0, null)")
    assert [r.record_id for r in await src.read(10)] == ["ev:public.events:z/0"]
    await src.close()
    await conn.close()


async def test_reconnects_after_the_server_restarts(
    db: asyncpg.Connection, pg_database: str, pg_server: PostgresServer
) -> None:
    if pg_server.folder is None:
        pytest.skip("needs the private test server (PG_TEST_DSN is set)")
    await insert_dibao(db, generate_records(6, invalid=0))
    src = source(pg_database)
    await src.connect(None)
    got = await src.read(3)
    await asyncio.to_thread(pg_server.restart, 0.5)
    got += await drain(src, 3)
    await src.close()
    assert len(got) == 6 and len({r.record_id for r in got}) == 6


async def test_a_table_changed_under_the_source_is_a_clear_error(
    db: asyncpg.Connection, pg_database: str
) -> None:
    await insert_dibao(db, generate_records(2, invalid=0))
    src = source(pg_database)
    await src.connect(None)
    await db.execute("ALTER TABLE dibao DROP COLUMN dz")
    with pytest.raises(SourceQueryError, match="reading dibao failed"):
        await src.read(10)
    await src.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"table": "nope"}, "source.table: 'nope' does not exist"),
        ({"cursor_column": "changed"}, "column 'changed' is not in dibao"),
        ({"columns": {"id_card": "sfz"}}, "source.columns.id_card: column 'sfz'"),
        ({"filter": "nosuch > 1"}, "the query on dibao fails"),
        ({"cursor_column": "lb", "settle_s": 1}, "must be a date or timestamp"),
    ],
)
async def test_config_problems_are_one_clear_error(
    db: asyncpg.Connection, pg_database: str, settings: dict[str, Any], message: str
) -> None:
    src = source(pg_database, **settings)
    with pytest.raises(ConfigError, match=message):
        await src.connect(None)
    await src.close()


async def test_wrong_database_is_a_clear_error(pg_server: PostgresServer) -> None:
    src = source(pg_server.dsn("no_such_db"))
    with pytest.raises(ConfigError, match=r"source\.dsn: PostgreSQL refused the login"):
        await src.connect(None)
