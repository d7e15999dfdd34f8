"""PostgreSQL source: a snapshot of a table, then its changes by a cursor column.

Rows are read page by page in keyset order, never with OFFSET:

- **snapshot** — ``WHERE (pk) > ($key) AND (pk) <= ($last) ORDER BY pk LIMIT n``: the rows
  up to the last key present when it began, after noting the cursor column's high-water
  mark, and only those at or below that mark (or whose cursor column is NULL). It uses the
  primary-key index. Rows past the mark — inserted or changed since the snapshot began,
  even between the two queries that set its bounds — come with the incremental phase,
  never twice.
- **incremental** — ``WHERE (cursor, pk) > ($cursor, $key) ORDER BY cursor, pk LIMIT n``,
  starting right after the high-water row (the last row in (cursor, pk) order when the
  snapshot began). The primary key breaks ties between equal cursor values: rows sharing a
  timestamp are neither skipped nor repeated, however the pages fall.

Without a cursor column the source follows the primary key only (append-only tables).

Positions hold the cursor and key values in PostgreSQL's own text form and bind them back
with a cast to the column's type, so any orderable type works (timestamptz, bigint,
numeric, text) and nothing is lost to float or time-zone conversions. The runner stores the
position of the last record Kafka acknowledged; a restart resumes right after it.

Record ids are ``<connector>:<table>:<key>@<cursor>``: a re-read after a crash yields the
same id, while an update of the row (a new cursor value) is a new version with a new id.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import decimal
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors.base import Source, SourceRecord
from hub.config import ConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'govhub[postgres]'"
_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
_LAG_EVERY_S = 10.0
_LAG_CAP = 1_000_000
_PLAIN = frozenset({str, int, float, bool, type(None)})
# The common non-JSON types, converted as to_json_value converts them (without its checks).
_TO_JSON: dict[type, Callable[[Any], Any]] = {
    decimal.Decimal: str,
    datetime.date: datetime.date.isoformat,
    datetime.datetime: datetime.datetime.isoformat,
}


def require_asyncpg(what: str) -> ModuleType:
    """asyncpg, or a ConfigError that names the install command."""
    try:
        import asyncpg
    except ImportError:
        raise ConfigError(f"{what} needs the asyncpg driver: {INSTALL_HINT}") from None
    module: ModuleType = asyncpg
    return module


def connection_errors(pg: ModuleType) -> tuple[type[BaseException], ...]:
    """The errors after which a PostgreSQL connection is worth re-opening."""
    return (
        OSError,
        TimeoutError,
        pg.PostgresConnectionError,
        pg.InterfaceError,
        pg.exceptions.CannotConnectNowError,
        pg.exceptions.AdminShutdownError,
        pg.exceptions.CrashShutdownError,
    )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str) -> str:
    """``schema.name`` or ``name``, each part quoted (names keep their case)."""
    return ".".join(quote_ident(part) for part in table.split(".", 1))


class PostgresSourceConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dsn: SecretStr = Field(
        description="postgresql://user:${PG_PASSWORD}@host:5432/db — keep the password in env"
    )
    table: str = Field(min_length=1, description="table to publish: name or schema.name")
    primary_key: tuple[str, ...] = Field(
        default=(), description="key columns; empty: the table's PRIMARY KEY"
    )
    cursor_column: str | None = Field(
        default=None,
        description="a column that grows on every insert and update (updated_at, version); "
        "unset: follow the primary key only (append-only tables)",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="record field = table column; empty: every column under its own name",
    )
    filter: str | None = Field(
        default=None, description="an SQL condition rows must meet, e.g. \"status <> 'draft'\""
    )
    snapshot: bool = Field(
        default=True, description="publish the existing rows first; false: only later changes"
    )
    settle_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="leave rows newer than this many seconds for the next poll, so writes "
        "whose transactions commit late are not passed by (timestamp cursors only)",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    reconnect_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="give up (and stop) after this long offline"
    )

    @model_validator(mode="after")
    def _check(self) -> PostgresSourceConfig:
        if self.settle_s and not self.cursor_column:
            raise ValueError("settle_s needs cursor_column (a timestamp column)")
        for name in (*self.primary_key, *(self.columns.values())):
            if not name or "\x00" in name:
                raise ValueError(f"invalid column name {name!r}")
        if "\x00" in self.table or self.table.startswith(".") or self.table.endswith("."):
            raise ValueError(f"invalid table name {self.table!r} (use name or schema.name)")
        return self


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: str  # format_type(): what a text value is cast back to

    @property
    def quoted(self) -> str:
        return quote_ident(self.name)

    def param(self, index: int) -> str:
        return f"${index}::text::{self.sql_type}"


@dataclass(frozen=True, slots=True)
class TableShape:
    """What the queries need to know about the table, resolved once at connect."""

    table: str  # as configured, for record ids and messages
    key: tuple[Column, ...]
    cursor: Column | None
    fields: tuple[tuple[str, str], ...]  # (record field, column name)
    filter: str | None = None

    @property
    def cursor_is_time(self) -> bool:
        return self.cursor is not None and self.cursor.sql_type in _TIME_TYPES


Phase = Literal["snapshot", "incremental"]


@dataclass(frozen=True, slots=True)
class Position:
    """Where the source stands: the last row read, as text values (checkpointed as JSON)."""

    phase: Phase
    key: tuple[str, ...] | None = None  # None: before the first row
    cursor: str | None = None
    # snapshot only: the (cursor, key) of the row after which incremental reading starts
    high_water: tuple[str, tuple[str, ...]] | None = None
    until: tuple[str, ...] | None = None  # snapshot only: the last key it covers

    def at(self, key: tuple[str, ...], cursor: str | None) -> Position:
        """The position after a row with ``key`` (and ``cursor``) in this phase."""
        if self.phase == "snapshot":
            return Position("snapshot", key, high_water=self.high_water, until=self.until)
        return Position("incremental", key, cursor)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"phase": self.phase, "key": list(self.key) if self.key else None}
        if self.phase == "incremental":
            doc["cursor"] = self.cursor
        else:
            if self.high_water is not None:
                hw_cursor, hw_key = self.high_water
                doc["high_water"] = {"cursor": hw_cursor, "key": list(hw_key)}
            if self.until is not None:
                doc["until"] = list(self.until)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Position:
        phase = doc.get("phase")
        if phase not in ("snapshot", "incremental"):
            raise ConfigError(f"stored checkpoint {dict(doc)} is not a postgres source position")
        try:
            key = doc.get("key")
            hw = doc.get("high_water")
            until = doc.get("until")
            return cls(
                phase,
                tuple(str(k) for k in key) if key else None,
                None if doc.get("cursor") is None else str(doc["cursor"]),
                (str(hw["cursor"]), tuple(str(k) for k in hw["key"])) if hw else None,
                tuple(str(k) for k in until) if until else None,
            )
        except (TypeError, KeyError, AttributeError):
            raise ConfigError(
                f"stored checkpoint {dict(doc)} is not a postgres source position"
            ) from None

    def after_snapshot(self) -> Position:
        if self.high_water is None:  # the table had no row with a cursor value
            return Position("incremental")
        return Position("incremental", self.high_water[1], self.high_water[0])


def page_query(
    shape: TableShape, position: Position, limit: int, settle_s: float = 0.0
) -> tuple[str, list[Any]]:
    """The SQL and arguments for the next page after ``position``.

    Selected: the key columns as text, the cursor column as text, then the record fields.
    """
    key_cols = ", ".join(c.quoted for c in shape.key)
    # Output names are positional aliases, so ORDER BY always means the table's columns.
    parts = [f"{c.quoted}::text AS _k{i}" for i, c in enumerate(shape.key)]
    parts.append(f"{shape.cursor.quoted}::text AS _c" if shape.cursor else "NULL::text AS _c")
    parts += [f"{quote_ident(column)} AS _f{i}" for i, (_, column) in enumerate(shape.fields)]
    where: list[str] = []
    args: list[Any] = []

    def bind(column: Column, value: str) -> str:
        args.append(value)
        return column.param(len(args))

    cursor = shape.cursor
    if position.phase == "snapshot" or cursor is None:
        if position.key is not None:
            bound = ", ".join(bind(c, v) for c, v in zip(shape.key, position.key, strict=True))
            where.append(f"({key_cols}) > ({bound})")
        if position.until is not None:
            bound = ", ".join(bind(c, v) for c, v in zip(shape.key, position.until, strict=True))
            where.append(f"({key_cols}) <= ({bound})")
        if position.phase == "snapshot" and cursor is not None:
            # Each row goes out in exactly one phase: rows past the high-water mark (written
            # or changed since the snapshot began) are the incremental phase's.
            if position.high_water is None:
                where.append(f"{cursor.quoted} IS NULL")
            else:
                hw_cursor, hw_key = position.high_water
                values = (hw_cursor, *hw_key)
                columns = (cursor, *shape.key)
                bound = ", ".join(bind(c, v) for c, v in zip(columns, values, strict=True))
                where.append(
                    f"({cursor.quoted} IS NULL OR ({cursor.quoted}, {key_cols}) <= ({bound}))"
                )
        order = key_cols
    else:
        if position.cursor is not None and position.key is not None:
            values = (position.cursor, *position.key)
            columns = (cursor, *shape.key)
            bound = ", ".join(bind(c, v) for c, v in zip(columns, values, strict=True))
            where.append(f"({cursor.quoted}, {key_cols}) > ({bound})")
        else:
            where.append(f"{cursor.quoted} IS NOT NULL")
        if settle_s and shape.cursor_is_time:
            args.append(settle_s)
            where.append(settled(cursor, len(args)))
        order = f"{cursor.quoted}, {key_cols}"
    if shape.filter:
        where.append(f"({shape.filter})")
    args.append(limit)
    sql = (
        f"SELECT {', '.join(parts)} FROM {quote_table(shape.table)}"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {order} LIMIT ${len(args)}"
    )
    return sql, args


def settled(cursor: Column, index: int) -> str:
    return f"{cursor.quoted} <= now() - make_interval(secs => ${index}::float8)"


def last_key_query(shape: TableShape) -> str:
    """The last primary key now: where a snapshot ends."""
    where = f" WHERE ({shape.filter})" if shape.filter else ""
    return (
        f"SELECT {', '.join(f'{c.quoted}::text AS _l{i}' for i, c in enumerate(shape.key))} "
        f"FROM {quote_table(shape.table)}{where} "
        f"ORDER BY {', '.join(f'{c.quoted} DESC' for c in shape.key)} LIMIT 1"
    )


def high_water_query(shape: TableShape, settle_s: float = 0.0) -> tuple[str, list[Any]]:
    """The last row in (cursor, key) order now: where incremental reading starts."""
    assert shape.cursor is not None
    where = [f"{shape.cursor.quoted} IS NOT NULL"]
    args: list[Any] = []
    if settle_s and shape.cursor_is_time:
        args.append(settle_s)
        where.append(settled(shape.cursor, 1))
    if shape.filter:
        where.append(f"({shape.filter})")
    columns = (shape.cursor, *shape.key)
    sql = (
        f"SELECT {', '.join(f'{c.quoted}::text AS _h{i}' for i, c in enumerate(columns))} "
        f"FROM {quote_table(shape.table)} WHERE {' AND '.join(where)} "
        f"ORDER BY {', '.join(f'{c.quoted} DESC' for c in columns)} LIMIT 1"
    )
    return sql, args


def to_json_value(value: Any) -> Any:
    """A database value as JSON-typed input for ``AvroCodec.from_json``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)  # intervals, network addresses, ranges, ...


_INTROSPECT = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                 WHERE k.attnum = a.attnum), 0)
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


class PostgresSource(Source):
    def __init__(self, name: str, config: PostgresSourceConfig) -> None:
        self.name = name
        self.config = config
        self._pg = require_asyncpg("the postgres source")
        self._conn: Any = None
        self._shape: TableShape | None = None
        self._position = Position("snapshot")
        self._lag: float | None = None
        self._lag_at = 0.0

    @classmethod
    def from_config(cls, name: str, config: PostgresSourceConfig) -> PostgresSource:
        return cls(name, config)

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        await self._reconnect(self.config.connect_timeout_s)
        self._shape = shape = await self._resolve_shape()
        try:
            if checkpoint:
                self._position = Position.from_json(checkpoint)
            elif shape.cursor is None:
                self._position = Position("snapshot")
            else:
                self._position = await self._start(shape)
            # A bad filter or a type without a text cast fails now, not on the first poll.
            sql, args = page_query(shape, self._position, 0, self.config.settle_s)
            await self._conn.fetch(sql, *args)
        except (self._pg.PostgresError, SourceQueryError) as exc:
            detail = exc.__cause__ if isinstance(exc, SourceQueryError) else exc
            raise ConfigError(f"source: the query on {self.config.table} fails: {detail}") from None
        log.info(
            "postgres source at %s",
            self._position.to_json(),
            extra={"connector": self.name, "table": self.config.table},
        )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()

    def lag(self) -> float | None:
        return self._lag

    # -- reading -----------------------------------------------------------------------

    async def read(self, max_records: int) -> list[SourceRecord]:
        shape = self._require_shape()
        rows = await self._page(shape, max_records)
        if not rows and self._position.phase == "snapshot" and shape.cursor is not None:
            self._position = self._position.after_snapshot()
            log.info("snapshot of %s done; following changes", shape.table)
            rows = await self._page(shape, max_records)
        records = self._records(shape, rows)
        if len(rows) < max_records:
            self._lag = 0.0
        elif time.monotonic() - self._lag_at > _LAG_EVERY_S:
            self._lag = await self._pending(shape)
        elif self._lag is not None:
            self._lag = max(0.0, self._lag - len(rows))
        return records

    async def _page(self, shape: TableShape, limit: int) -> list[Any]:
        sql, args = page_query(shape, self._position, limit, self.config.settle_s)
        rows: list[Any] = await self._retrying(lambda: self._conn.fetch(sql, *args))
        if rows:
            last = rows[-1]
            n = len(shape.key)
            self._position = self._position.at(tuple(last[:n]), last[n])
        return rows

    def _records(self, shape: TableShape, rows: Sequence[Sequence[Any]]) -> list[SourceRecord]:
        """The page's rows as records. The hot path of the source: the key and cursor
        arrive as text already (``::text``), and every row's position is the page's
        position (``self._position``, the phase and snapshot bounds) with the row's own
        key and cursor, so its JSON form is built once per page."""
        n = len(shape.key)
        template = self._position.to_json()
        incremental = self._position.phase == "incremental"
        prefix = f"{self.name}:{shape.table}:"
        names = [field for field, _ in shape.fields]
        out: list[SourceRecord] = []
        append = out.append
        for row in rows:
            values = tuple(row)
            key = values[:n]
            cursor_text = values[n]
            record_id = prefix + "/".join(key)
            if cursor_text is not None:
                record_id += f"@{cursor_text}"
            position = dict(template)
            position["key"] = list(key)
            if incremental:
                position["cursor"] = cursor_text
            value = dict(zip(names, values[n + 1 :], strict=True))
            try:
                for field, v in value.items():
                    kind = type(v)
                    if kind not in _PLAIN:
                        value[field] = _TO_JSON.get(kind, to_json_value)(v)
            except Exception as exc:  # a value with no JSON form: dead-letter it, keep going
                append(SourceRecord(record_id, None, position, b"", f"unconvertible: {exc}"))
                continue
            append(SourceRecord(record_id, value, position))
        return out

    async def _pending(self, shape: TableShape) -> float | None:
        """Rows still to read (counted up to a cap, at most every few seconds)."""
        self._lag_at = time.monotonic()
        sql, args = page_query(shape, self._position, _LAG_CAP, self.config.settle_s)
        try:
            count = await self._conn.fetchval(f"SELECT count(*) FROM ({sql}) AS pending", *args)
        except Exception as exc:
            log.debug("lag query failed: %s", exc)
            return None
        return float(count)

    # -- connection --------------------------------------------------------------------

    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        return connection_errors(self._pg)

    async def _retrying(self, call: Any) -> Any:
        """Run ``call`` on a live connection, reconnecting with backoff when the link drops."""
        deadline = time.monotonic() + self.config.reconnect_timeout_s
        attempt = 0
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._reconnect(max(0.1, deadline - time.monotonic()))
                return await call()
            except self._connection_errors() as exc:
                attempt += 1
                await self.close()
                if time.monotonic() >= deadline:
                    raise SourceUnavailable(
                        f"PostgreSQL unreachable for {self.config.reconnect_timeout_s:.0f} s "
                        f"({exc}); restart resumes from the checkpoint"
                    ) from exc
                delay = min(5.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2)
                log.warning(
                    "postgres source lost its connection (%s); retrying in %.1f s", exc, delay
                )
                await asyncio.sleep(delay)
            except self._pg.PostgresError as exc:
                raise SourceQueryError(
                    f"reading {self.config.table} failed: {exc} (was the table changed? the "
                    "connector resumes from its checkpoint once it is fixed)"
                ) from exc

    async def _reconnect(self, timeout: float) -> None:
        pg = self._pg
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            try:
                self._conn = await pg.connect(
                    self.config.dsn.get_secret_value(),
                    timeout=max(1.0, min(self.config.connect_timeout_s, timeout)),
                    server_settings={
                        "application_name": f"govhub-{self.name}"[:63],
                        "DateStyle": "ISO",
                        "TimeZone": "UTC",
                    },
                )
                return
            except (
                pg.InvalidPasswordError,
                pg.InvalidAuthorizationSpecificationError,
                pg.InvalidCatalogNameError,
            ) as exc:
                raise ConfigError(f"source.dsn: PostgreSQL refused the login: {exc}") from None
            except (*self._connection_errors(), pg.TooManyConnectionsError) as exc:
                attempt += 1
                if time.monotonic() >= deadline:
                    raise SourceUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))

    # -- the table ---------------------------------------------------------------------

    async def _resolve_shape(self) -> TableShape:
        config = self.config
        try:
            rows = await self._conn.fetch(_INTROSPECT, quote_table(config.table))
        except (self._pg.UndefinedTableError, self._pg.InvalidSchemaNameError):
            raise ConfigError(f"source.table: {config.table!r} does not exist") from None
        types = {row[0]: row[1] for row in rows}
        pk_columns = [row[0] for row in sorted(rows, key=lambda r: r[2]) if row[2]]

        def column(name: str, field: str) -> Column:
            if name not in types:
                known = ", ".join(types)
                raise ConfigError(
                    f"{field}: column {name!r} is not in {config.table} (columns: {known})"
                )
            return Column(name, types[name])

        key_names = list(config.primary_key) or pk_columns
        if not key_names:
            raise ConfigError(
                f"source.primary_key: {config.table} has no PRIMARY KEY; name the column(s) "
                "that identify a row"
            )
        key = tuple(column(n, "source.primary_key") for n in key_names)
        cursor = (
            column(config.cursor_column, "source.cursor_column") if config.cursor_column else None
        )
        if config.settle_s and (cursor is None or cursor.sql_type not in _TIME_TYPES):
            raise ConfigError("source.settle_s: the cursor column must be a date or timestamp")
        mapping = config.columns or {name: name for name in types}
        for field, name in mapping.items():
            column(name, f"source.columns.{field}")
        return TableShape(config.table, key, cursor, tuple(mapping.items()), config.filter)

    async def _start(self, shape: TableShape) -> Position:
        """Where a new connector starts: the snapshot's bounds and the high-water row."""
        sql, args = high_water_query(shape, self.config.settle_s)
        row = await self._retrying(lambda: self._conn.fetchrow(sql, *args))
        high_water = None if row is None else (row[0], tuple(row[1:]))
        start = Position("snapshot", high_water=high_water)
        if not self.config.snapshot:
            return start.after_snapshot()
        last = await self._retrying(lambda: self._conn.fetchrow(last_key_query(shape)))
        if last is None:  # an empty table: nothing to snapshot
            return start.after_snapshot()
        return Position("snapshot", high_water=high_water, until=tuple(last))

    def _require_shape(self) -> TableShape:
        if self._shape is None:
            raise RuntimeError("source not connected")
        return self._shape


class SourceUnavailable(ConnectionError):
    """PostgreSQL stayed unreachable past the configured timeout."""


class SourceQueryError(RuntimeError):
    """PostgreSQL refused a query the source relies on (the table changed under it)."""
