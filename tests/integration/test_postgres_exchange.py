"""PostgreSQL in, PostgreSQL out: a department table published by the PostgreSQL source
through the hub, and a subscriber's PostgreSQL sink that holds every delivered record
exactly once although its SDK client is stopped and restarted mid-stream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from connectors import builtin_postgres
from connectors.base import Backpressure
from connectors.registry import ConnectorRegistry
from connectors.runner import ConnectorRunner
from connectors.sdk.client import SubscriberClient
from connectors.sinks.base import Cursor
from connectors.sinks.postgres import PostgresSink, PostgresSinkConfig
from connectors.spec import load_spec
from hub.demo.world import generate_records
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

SOURCE_TABLE = """
CREATE TABLE mzj_dibao (
    id serial PRIMARY KEY, sfzh text NOT NULL, xm text NOT NULL, qhdm text NOT NULL,
    bzrs int NOT NULL, je numeric(10,2) NOT NULL, hdrq date NOT NULL, lb text NOT NULL, dz text,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
COLUMNS = ("sfzh", "xm", "qhdm", "bzrs", "je", "hdrq", "lb", "dz")
FIELDS = (
    "id_card",
    "name",
    "region_code",
    "household_size",
    "amount",
    "approved_on",
    "category",
    "address",
)


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


class BusyOnceSink(PostgresSink):
    """Says "busy" to the first non-empty batch, as a database under load would."""

    busy_left = 1

    def write(self, records: Any, cursor: Cursor) -> None:
        if records and self.busy_left:
            self.busy_left -= 1
            raise Backpressure(0.3, "test: busy")
        super().write(records, cursor)


async def sql(dsn: str, statement: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        if args:
            await conn.executemany(statement, args)
        else:
            await conn.execute(statement)
    finally:
        await conn.close()


async def insert(dsn: str, rows: list[dict[str, Any]]) -> None:
    await sql(
        dsn,
        f"INSERT INTO mzj_dibao ({', '.join(COLUMNS)}) "
        "VALUES ($1, $2, $3, $4, $5::text::numeric, $6::text::date, $7, $8)",
        *[tuple(r[f] for f in FIELDS) for r in rows],
    )


def write_spec(world: HubWorld, tmp_path: Path, dsn: str) -> Path:
    mapping = ", ".join(f'{f} = "{c}"' for f, c in zip(FIELDS, COLUMNS, strict=True))
    path = tmp_path / "pg-source.toml"
    path.write_text(
        f"""
[connector]
name = "mzj-dibao-pg"
type = "postgres"
resource = "dibao"
batch_size = 7
stop_when_idle = true

[kafka]
bootstrap_servers = "{world.bootstrap}"
topic_prefix = "{world.config.kafka.topic_prefix}"

[source]
dsn = "{dsn}"
table = "mzj_dibao"
cursor_column = "updated_at"
columns = {{ {mapping} }}
"""
    )
    return path


async def publish(spec_path: Path) -> int:
    registry = ConnectorRegistry()
    builtin_postgres.register(registry)
    spec = load_spec(spec_path, registry)
    runner = ConnectorRunner(spec, spec.type.factory(spec.name, spec.settings))
    await runner.run(asyncio.Event())
    assert runner.publisher is not None
    return runner.publisher.stats.published


class Subscriber:
    """An SDK client on its own thread, writing to the PostgreSQL sink."""

    def __init__(self, world: HubWorld, sink: PostgresSink) -> None:
        base = world.subscriber("rsj")
        self.client = SubscriberClient(base._s, sink)
        self.sink = sink
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.client.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def wait_for(self, records: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.client.records < records and time.monotonic() < deadline:
            assert self.thread.is_alive(), "subscriber thread died"
            time.sleep(0.05)

    def halt(self) -> int:
        self.stop.set()  # the loop ends after the batch in hand: between two sink writes
        self.thread.join(20)
        assert not self.thread.is_alive()
        self.sink.close()
        return self.client.records


def sink_config(dsn: str) -> PostgresSinkConfig:
    return PostgresSinkConfig.model_validate(
        {"dsn": dsn, "table": "rsj_dibao", "key": ["id_card"], "create_tables": True}
    )


async def test_table_to_table_exactly_once_across_a_subscriber_restart(
    world: HubWorld, pg_database: str, tmp_path: Path
) -> None:
    await sql(pg_database, SOURCE_TABLE)
    snapshot = generate_records(40, invalid=2)  # two fail the quality rules: dead letters
    await insert(pg_database, snapshot)
    spec = write_spec(world, tmp_path, pg_database)

    first = Subscriber(world, PostgresSink("rsj-dibao", sink_config(pg_database)))
    assert await publish(spec) == 40
    # Stop the first client between two of its batches, once it has written some records;
    # the department keeps changing its table while the subscriber is down.
    await asyncio.to_thread(first.wait_for, 15)
    got_first = await asyncio.to_thread(first.halt)

    # Meanwhile the department changes five households and registers five more.
    await sql(
        pg_database,
        "UPDATE mzj_dibao SET je = je + 100, updated_at = now() WHERE id IN (1, 2, 3, 4, 5)",
    )
    later = generate_records(5, seed=99, invalid=0)
    await insert(pg_database, later)
    assert await publish(spec) == 10  # resumed from its checkpoint: only the changes

    second = Subscriber(world, BusyOnceSink("rsj-dibao", sink_config(pg_database)))
    await asyncio.to_thread(second.wait_for, 50 - got_first)
    await asyncio.sleep(1.0)  # anything beyond the expectation (a duplicate) would show now
    got_second = await asyncio.to_thread(second.halt)

    assert second.client.backpressure_waits == 1
    assert got_first + got_second == 50, (got_first, got_second)  # each delivery written once
    expected = {r["id_card"]: r for r in snapshot[:40] + later}
    for r in snapshot[:5]:
        expected[r["id_card"]] = {**r, "amount": str(Decimal(r["amount"]) + 100)}
    conn = await asyncpg.connect(pg_database)
    try:
        rows = await conn.fetch("SELECT id_card, name, amount, approved_on FROM rsj_dibao")
        cursor = await conn.fetchval("SELECT count(*) FROM govhub_sink_cursors")
    finally:
        await conn.close()
    assert cursor == 1
    assert len(rows) == len(expected) == 45
    for row in rows:
        want = expected[row["id_card"]]
        assert row["name"] == want["name"]
        assert row["amount"] == Decimal(want["amount"])
        assert row["approved_on"].isoformat() == want["approved_on"]
