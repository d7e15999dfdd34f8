"""SQL of the PostgreSQL sink, as pure functions: table shapes, upserts, value text.

Every value is bound as text and cast to its column's type in SQL
(``$1::text::numeric``), so a view's Python values (Decimal, date, str) fit whatever
column types the subscriber chose — and a value that does not fit fails in PostgreSQL with
a message naming the column, instead of in the driver.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.sinks.base import DeliveredRecord, dumps
from connectors.sources.postgres import quote_ident, quote_table

LINEAGE: dict[str, str] = {
    "_record_id": "text",
    "_subscription": "text",
    "_source": "text",
    "_ingested_at": "timestamptz",
    "_received_at": "timestamptz",
}


def sql_type_for(value: Any) -> str:
    """The column type a new table gets for a field, from a sample value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, decimal.Decimal):
        return "numeric"
    if isinstance(value, datetime.datetime):
        return "timestamptz" if value.tzinfo is not None else "timestamp"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "time"
    if isinstance(value, bytes):
        return "bytea"
    if isinstance(value, dict | list):
        return "jsonb"
    return "text"


def pg_text(value: Any) -> str | None:
    """A value in PostgreSQL's text input form (NULL stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return dumps(value).decode()


def _ms_text(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def lineage_values(record: DeliveredRecord) -> dict[str, str]:
    return {
        "_record_id": record.record_id,
        "_subscription": record.subscription,
        "_source": f"{record.source_topic}/{record.source_partition}/{record.source_offset}",
        "_ingested_at": _ms_text(record.ingested_at_ms),
        "_received_at": _ms_text(record.received_at_ms),
    }


def row_values(
    record: DeliveredRecord, columns: Sequence[str], jsonb_layout: bool
) -> list[str | None]:
    lineage = lineage_values(record)
    out: list[str | None] = []
    for name in columns:
        if name in lineage:
            out.append(lineage[name])
        elif jsonb_layout and name == "data":
            out.append(dumps(record.data).decode())
        else:
            out.append(pg_text(record.data.get(name)))
    return out


def infer_types(records: Sequence[DeliveredRecord], fields: Sequence[str]) -> dict[str, str]:
    """Column types for ``fields`` from the first non-null value of each in ``records``."""
    types: dict[str, str] = {}
    for name in fields:
        sample = next((r.data[name] for r in records if r.data.get(name) is not None), None)
        types[name] = sql_type_for(sample)
    return types


def create_table_sql(table: str, columns: Mapping[str, str], key: Sequence[str]) -> str:
    cols = ", ".join(f"{quote_ident(n)} {t}" for n, t in columns.items())
    pk = ", ".join(quote_ident(k) for k in key)
    return f"CREATE TABLE IF NOT EXISTS {quote_table(table)} ({cols}, PRIMARY KEY ({pk}))"


def add_columns_sql(table: str, columns: Mapping[str, str]) -> str:
    adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {quote_ident(n)} {t}" for n, t in columns.items())
    return f"ALTER TABLE {quote_table(table)} {adds}"


def upsert_sql(
    table: str, columns: Sequence[str], types: Mapping[str, str], key: Sequence[str]
) -> str:
    names = ", ".join(quote_ident(c) for c in columns)
    values = ", ".join(f"${i}::text::{types[c]}" for i, c in enumerate(columns, 1))
    conflict = ", ".join(quote_ident(k) for k in key)
    updates = [c for c in columns if c not in key]
    action = (
        "DO UPDATE SET "
        + ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in updates)
        if updates
        else "DO NOTHING"
    )
    return (
        f"INSERT INTO {quote_table(table)} ({names}) VALUES ({values}) "
        f"ON CONFLICT ({conflict}) {action}"
    )


def cursor_table_sql(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_table(table)} (sink text PRIMARY KEY, "
        "partition integer NOT NULL, next_offset bigint NOT NULL, sequence jsonb NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now())"
    )


def rejected_table_sql(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_table(table)} (id bigserial PRIMARY KEY, "
        "sink text NOT NULL, record_id text NOT NULL, source text NOT NULL, data jsonb, "
        "error text NOT NULL, rejected_at timestamptz NOT NULL DEFAULT now())"
    )


def jsonb_columns(key: Sequence[str]) -> dict[str, str]:
    return {**{k: "text" for k in key}, "data": "jsonb", **LINEAGE}


COLUMNS_OF = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

UNIQUE_KEYS_OF = """
SELECT array_agg(a.attname::text ORDER BY a.attname)
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL
GROUP BY i.indexrelid
"""
