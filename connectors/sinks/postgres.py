"""PostgreSQL sink: upsert by the resource's key, cursor in the same transaction.

Each ``write`` is one transaction: it locks this sink's row in the cursor table, upserts
the records into the table, and stores the new cursor. The table therefore holds exactly
the records up to the stored cursor — exactly once, whatever crashes where.

- The cursor row doubles as a fence: if another process with the same sink name moved it,
  the write fails instead of interleaving. If the connection dropped while a commit was in
  flight, the next attempt finds the cursor already at the batch's end and skips it.
- Layouts: ``columns`` (a column per field, the default) or ``jsonb`` (key columns plus the
  whole record in ``data``). Lineage columns (``_record_id``, ``_source``, ...) are filled
  when the table has them; tables this sink creates always do.
- ``create_tables = true`` creates the table (column types from the first records), the
  cursor table and the rejected-records table, and adds columns when the resource's schema
  grows. Otherwise they must exist, and a field without a column stops the sink with a
  message that names it (or is skipped with ``ignore_unknown_fields``).
- A record that the table refuses (a value that does not fit its column, a NULL key) is
  stored in the rejected table with the database's reason; the other records go in.
- PostgreSQL unreachable: ``write`` raises ``Backpressure`` and the SDK retries the same
  batch after a growing delay.

The sink is synchronous (the SDK drives it from its thread) and runs asyncpg on a private
event loop in a thread of its own; ``close()`` ends both.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from collections.abc import Coroutine, Sequence
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors.base import Backpressure
from connectors.sinks import pgsql
from connectors.sinks.base import Cursor, DeliveredRecord, Sink, dumps
from connectors.sinks.state import SinkStateError
from connectors.sources.postgres import connection_errors, quote_table, require_asyncpg
from hub.config import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

_FENCE = "SELECT partition, next_offset FROM {} WHERE sink = $1 FOR UPDATE"
_LOAD = "SELECT partition, next_offset, sequence::text FROM {} WHERE sink = $1"
_STORE = (
    "INSERT INTO {} (sink, partition, next_offset, sequence, updated_at) "
    "VALUES ($1, $2, $3, $4::jsonb, now()) ON CONFLICT (sink) DO UPDATE SET "
    "partition = EXCLUDED.partition, next_offset = EXCLUDED.next_offset, "
    "sequence = EXCLUDED.sequence, updated_at = now()"
)
_REJECT = "INSERT INTO {} (sink, record_id, source, data, error) VALUES ($1, $2, $3, $4::jsonb, $5)"


class PostgresSinkConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dsn: SecretStr = Field(description="postgresql://user:${PG_PASSWORD}@host:5432/db")
    table: str = Field(min_length=1, description="target table: name or schema.name")
    key: tuple[str, ...] = Field(
        min_length=1, description="fields that identify a row (the resource's key field)"
    )
    layout: Literal["columns", "jsonb"] = "columns"
    create_tables: bool = Field(default=False, description="create/extend missing tables")
    cursor_table: str = Field(default="govhub_sink_cursors", min_length=1)
    rejected_table: str | None = Field(
        default=None, description="records the table refused; default <table>_rejected"
    )
    ignore_unknown_fields: bool = Field(
        default=False, description="skip fields the table has no column for (else: stop)"
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _check(self) -> PostgresSinkConfig:
        for name in (self.table, self.cursor_table, self.rejected_table or "x", *self.key):
            if "\x00" in name or name.startswith(".") or name.endswith("."):
                raise ValueError(f"invalid name {name!r}")
        return self

    @property
    def rejected(self) -> str:
        return self.rejected_table or f"{self.table}_rejected"


class PostgresSink(Sink):
    def __init__(self, name: str, config: PostgresSinkConfig) -> None:
        self.name = name
        self.config = config
        self._pg = require_asyncpg("the postgres sink")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"govhub-pg-sink-{name}", daemon=True
        )
        self._thread.start()
        self._conn: Any = None
        self._columns: dict[str, str] | None = None  # None: not known (re-read before use)
        self._expected: tuple[int, int] | None = None  # cursor this sink last saw stored
        self._loaded = False
        self._failures = 0
        self.records_written = 0
        self.records_rejected = 0
        try:
            self._run(self._open())
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, name: str, config: PostgresSinkConfig) -> PostgresSink:
        return cls(name, config)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the sink's own loop thread; callable from any thread or loop."""
        if self._loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise RuntimeError("postgres sink is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # -- Sink --------------------------------------------------------------------------

    def load_cursor(self) -> Cursor | None:
        return self._run(self._load_cursor())

    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        try:
            self._run(self._write(records, cursor))
        except self._connection_errors() as exc:
            self._columns = None
            self._failures += 1
            delay = min(30.0, 0.5 * 2 ** (self._failures - 1))
            self._run(self._drop())
            raise Backpressure(delay, f"PostgreSQL unreachable ({exc})") from exc
        except BaseException:
            self._columns = None  # a rolled-back DDL must not be believed
            raise
        self._failures = 0

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._drop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __del__(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            warnings.warn(
                f"PostgresSink {self.name!r} was not closed (it holds a connection and a thread)",
                ResourceWarning,
                stacklevel=1,
            )

    # -- connection --------------------------------------------------------------------

    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        return connection_errors(self._pg)

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            try:
                self._conn = await self._pg.connect(
                    self.config.dsn.get_secret_value(),
                    timeout=self.config.connect_timeout_s,
                    server_settings={
                        "application_name": f"govhub-sink-{self.name}"[:63],
                        "TimeZone": "UTC",
                    },
                )
            except (
                self._pg.InvalidPasswordError,
                self._pg.InvalidAuthorizationSpecificationError,
                self._pg.InvalidCatalogNameError,
            ) as exc:
                raise ConfigError(f"sink.dsn: PostgreSQL refused the login: {exc}") from None
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()

    async def _open(self) -> None:
        """Connect, create or check the bookkeeping tables and the target table's key."""
        config = self.config
        deadline = self._loop.time() + config.connect_timeout_s
        while True:
            try:
                conn = await self._connection()
                break
            except self._connection_errors() as exc:
                if self._loop.time() >= deadline:
                    raise ConfigError(f"sink.dsn: cannot connect to PostgreSQL: {exc}") from None
                await asyncio.sleep(0.5)
        if config.create_tables:
            await conn.execute(pgsql.cursor_table_sql(config.cursor_table))
            await conn.execute(pgsql.rejected_table_sql(config.rejected))
            if config.layout == "jsonb":
                columns = pgsql.jsonb_columns(config.key)
                await conn.execute(pgsql.create_table_sql(config.table, columns, config.key))
        for table, ddl in (
            (config.cursor_table, pgsql.cursor_table_sql(config.cursor_table)),
            (config.rejected, pgsql.rejected_table_sql(config.rejected)),
        ):
            if not await self._table_columns(conn, table):
                raise ConfigError(
                    f"sink: table {table} does not exist; set create_tables = true or run: {ddl}"
                )
        self._columns = await self._table_columns(conn, config.table)
        if self._columns:
            await self._check_key(conn)
        elif not config.create_tables:
            raise ConfigError(
                f"sink.table: {config.table} does not exist; create it (with a PRIMARY KEY on "
                f"{', '.join(config.key)}) or set create_tables = true"
            )

    async def _table_columns(self, conn: Any, table: str) -> dict[str, str]:
        rows = await conn.fetch(pgsql.COLUMNS_OF, quote_table(table))
        return {row[0]: row[1] for row in rows}

    async def _check_key(self, conn: Any) -> None:
        config = self.config
        missing = [k for k in config.key if k not in (self._columns or {})]
        if missing:
            raise ConfigError(f"sink.key: {config.table} has no column {', '.join(missing)}")
        uniques = {
            tuple(row[0])
            for row in await conn.fetch(pgsql.UNIQUE_KEYS_OF, quote_table(config.table))
        }
        if tuple(sorted(config.key)) not in uniques:
            raise ConfigError(
                f"sink.key: {config.table} needs a PRIMARY KEY or UNIQUE index on "
                f"({', '.join(config.key)}) for upserts"
            )

    # -- cursor ------------------------------------------------------------------------

    async def _load_cursor(self) -> Cursor | None:
        conn = await self._connection()
        row = await conn.fetchrow(_LOAD.format(quote_table(self.config.cursor_table)), self.name)
        self._loaded = True
        if row is None:
            self._expected = None
            return None
        self._expected = (int(row[0]), int(row[1]))
        return Cursor(int(row[0]), int(row[1]), dict(orjson.loads(row[2])))

    # -- writing -----------------------------------------------------------------------

    async def _write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        config = self.config
        conn = await self._connection()
        target = (cursor.partition, cursor.next_offset)
        cursors = quote_table(config.cursor_table)
        rejected: list[tuple[DeliveredRecord, str]] = []
        async with conn.transaction():
            row = await conn.fetchrow(_FENCE.format(cursors), self.name)
            stored = None if row is None else (int(row[0]), int(row[1]))
            if stored == target and stored != self._expected:
                log.info("batch up to offset %d was committed before the link dropped", target[1])
                self._expected = target
                return
            if self._loaded and stored != self._expected:
                raise SinkStateError(
                    f"the cursor of sink {self.name!r} in {config.cursor_table} moved to "
                    f"{stored} (expected {self._expected}): another process writes with the "
                    "same sink name"
                )
            if records:
                rejected = await self._upsert(conn, records)
            await conn.execute(
                _STORE.format(cursors),
                self.name,
                cursor.partition,
                cursor.next_offset,
                orjson.dumps(cursor.sequence).decode(),
            )
        self._expected = target
        self._loaded = True
        self.records_written += len(records) - len(rejected)
        self.records_rejected += len(rejected)
        for record, reason in rejected:
            log.warning("record %s refused by %s: %s", record.record_id, config.table, reason)

    async def _upsert(
        self, conn: Any, records: Sequence[DeliveredRecord]
    ) -> list[tuple[DeliveredRecord, str]]:
        config = self.config
        if self._columns is None:
            self._columns = await self._table_columns(conn, config.table)
        if config.layout == "jsonb":
            columns = [c for c in pgsql.jsonb_columns(config.key) if c in self._columns]
        else:
            columns = await self._fit_columns(conn, records)
        types = self._columns
        sql = pgsql.upsert_sql(config.table, columns, types, config.key)
        jsonb = config.layout == "jsonb"
        rows = [pgsql.row_values(r, columns, jsonb) for r in records]
        try:
            async with conn.transaction():  # a savepoint: a refused row undoes only this step
                await conn.executemany(sql, rows)
            return []
        except (self._pg.DataError, self._pg.IntegrityConstraintViolationError):
            pass
        rejected: list[tuple[DeliveredRecord, str]] = []
        for record, values in zip(records, rows, strict=True):
            try:
                async with conn.transaction():
                    await conn.execute(sql, *values)
            except (self._pg.DataError, self._pg.IntegrityConstraintViolationError) as exc:
                rejected.append((record, f"{type(exc).__name__}: {exc}"))
        reject_sql = _REJECT.format(quote_table(config.rejected))
        await conn.executemany(
            reject_sql,
            [
                (
                    self.name,
                    r.record_id,
                    f"{r.source_topic}/{r.source_partition}/{r.source_offset}",
                    dumps(r.data).decode(),
                    reason,
                )
                for r, reason in rejected
            ],
        )
        return rejected

    async def _fit_columns(self, conn: Any, records: Sequence[DeliveredRecord]) -> list[str]:
        """The columns this batch writes; creates or widens the table when allowed."""
        config = self.config
        assert self._columns is not None
        fields: list[str] = []
        for record in records:
            fields.extend(f for f in record.data if f not in fields)
        missing = [f for f in fields if f not in self._columns]
        if missing and config.create_tables:
            types = pgsql.infer_types(records, missing)
            if not self._columns:
                absent = [k for k in config.key if k not in types and k not in pgsql.LINEAGE]
                if absent:
                    raise ConfigError(f"sink.key: records have no field {', '.join(absent)}")
                ddl = pgsql.create_table_sql(config.table, {**types, **pgsql.LINEAGE}, config.key)
            else:
                ddl = pgsql.add_columns_sql(config.table, types)
                log.info("adding columns %s to %s", ", ".join(missing), config.table)
            await conn.execute(ddl)
            self._columns = await self._table_columns(conn, config.table)
        elif missing and not config.ignore_unknown_fields:
            raise SinkStateError(
                f"{config.table} has no column for field(s) {', '.join(missing)}: add them, "
                "or set create_tables = true or ignore_unknown_fields = true"
            )
        known = [f for f in fields if f in self._columns]
        return known + [c for c in pgsql.LINEAGE if c in self._columns and c not in known]
