"""Conformance case of the PostgreSQL source: a department table that grows while the
connector runs, with column names of the department's own (pinyin) mapped to the schema.

Rows are inserted in small transactions, so several rows share one ``updated_at`` (the
transaction time) and page boundaries fall inside equal timestamps.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from tests.conformance.harness import CaseEnv, ConnectorCase, Row

COLUMNS = {
    "id_card": "sfzh",
    "name": "xm",
    "region_code": "qhdm",
    "household_size": "bzrs",
    "amount": "je",
    "approved_on": "hdrq",
    "category": "lb",
    "address": "dz",
}
TABLE = """
CREATE TABLE IF NOT EXISTS mzj_dibao (
    id bigserial PRIMARY KEY, sfzh text NOT NULL, xm text NOT NULL, qhdm text NOT NULL,
    bzrs int NOT NULL, je numeric(10,2) NOT NULL, hdrq date NOT NULL, lb text NOT NULL,
    dz text, updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mzj_dibao_cursor ON mzj_dibao (updated_at, id);
"""
INSERT = (
    f"INSERT INTO mzj_dibao ({', '.join(COLUMNS.values())}) "
    "VALUES ($1, $2, $3, $4, $5::text::numeric, $6::text::date, $7, $8)"
)
CHUNK = 50

_databases: dict[str, str] = {}  # case folder -> DSN of its database


def _sql(dsn: str, statement: str, rows: Sequence[tuple[Any, ...]] = ()) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            if rows:
                await conn.executemany(statement, rows)
            else:
                await conn.execute(statement)
        finally:
            await conn.close()

    # Cases are called from inside the suite's event loop too: run on a thread of its own.
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="pg-case-sql")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def database(env: CaseEnv) -> str:
    """A database with the department's table, one per case run (made on first use)."""
    dsn = _databases.get(str(env.tmp))
    if dsn is None:
        from tests.pg_fixtures import PostgresUnavailable, shared_server

        try:
            server = shared_server()
        except PostgresUnavailable as exc:
            pytest.skip(f"no PostgreSQL server: {exc}")
        name = f"cf_{uuid.uuid4().hex[:12]}"
        _sql(server.dsn(), f'CREATE DATABASE "{name}"')
        dsn = server.dsn(name)
        _sql(dsn, TABLE)
        _databases[str(env.tmp)] = dsn
    return dsn


def drop_database(env: CaseEnv) -> None:
    dsn = _databases.pop(str(env.tmp), None)
    if dsn is None:
        return
    from tests.pg_fixtures import shared_server

    name = dsn.rsplit("/", 1)[1]
    _sql(shared_server().dsn(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings(env: CaseEnv) -> dict[str, Any]:
    return {
        "dsn": database(env),
        "table": "mzj_dibao",
        "cursor_column": "updated_at",
        "columns": COLUMNS,
    }


class TableFeeder:
    """Inserts the rows in small transactions from a thread, as a department system would."""

    def __init__(self, env: CaseEnv, rows: Sequence[Row]) -> None:
        self.dsn = database(env)
        self.rows = [tuple(row[f] for f in COLUMNS) for row in rows]
        self.inserted = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for i in range(0, len(self.rows), CHUNK):
                if self._stop.is_set():
                    return
                chunk = self.rows[i : i + CHUNK]
                _sql(self.dsn, INSERT, chunk)
                self.inserted += len(chunk)
                self._stop.wait(0.02)
        except BaseException as exc:
            self.error = exc

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self.error is not None:
            raise AssertionError(f"inserting into PostgreSQL failed: {self.error}")
        if self._thread.is_alive():
            raise AssertionError(f"only {self.inserted} rows inserted in {timeout:.0f}s")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


CASES = [
    ConnectorCase(
        name="postgres",
        type="postgres",
        settings=settings,
        feed=TableFeeder,
        requires=("asyncpg",),
        cleanup=drop_database,
    ),
]
