import datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from connectors.sinks import pgsql
from connectors.sinks.base import DeliveredRecord
from connectors.sinks.postgres import PostgresSinkConfig


def rec(**data: object) -> DeliveredRecord:
    return DeliveredRecord("dibao", "sub", "r1", "src", 2, 9, 1_700_000_000_000, 0, dict(data))


def test_upsert_binds_text_and_casts_to_the_column_type() -> None:
    sql = pgsql.upsert_sql(
        "s.t", ["id_card", "amount"], {"id_card": "text", "amount": "numeric(10,2)"}, ["id_card"]
    )
    assert sql == (
        'INSERT INTO "s"."t" ("id_card", "amount") VALUES ($1::text::text, '
        '$2::text::numeric(10,2)) ON CONFLICT ("id_card") DO UPDATE SET "amount" = '
        'EXCLUDED."amount"'
    )
    only_key = pgsql.upsert_sql("t", ["k"], {"k": "text"}, ["k"])
    assert only_key.endswith("DO NOTHING")


def test_types_are_inferred_from_the_first_value_present() -> None:
    records = [
        rec(a=None, b=1, c=Decimal("1.5")),
        rec(a="x", b=2, d=datetime.date(2026, 1, 1), e=True, f={"x": 1}),
    ]
    types = pgsql.infer_types(records, ["a", "b", "c", "d", "e", "f", "g"])
    assert types == {
        "a": "text",
        "b": "bigint",
        "c": "numeric",
        "d": "date",
        "e": "boolean",
        "f": "jsonb",
        "g": "text",
    }


def test_row_values_are_postgres_text() -> None:
    record = rec(amount=Decimal("12.30"), on=datetime.date(2026, 2, 3), ok=False, raw=b"\x00\xff")
    columns = ["amount", "on", "ok", "raw", "missing", "_record_id", "_source", "_ingested_at"]
    assert pgsql.row_values(record, columns, jsonb_layout=False) == [
        "12.30",
        "2026-02-03",
        "false",
        "\\x00ff",
        None,
        "r1",
        "src/2/9",
        "2023-11-14T22:13:20+00:00",
    ]
    assert pgsql.row_values(record, ["data"], jsonb_layout=True)[0] == (
        '{"amount":"12.30","on":"2026-02-03","ok":false,"raw":"AP8="}'
    )


def test_config_requires_a_key_and_names_tables() -> None:
    with pytest.raises(ValidationError, match="key"):
        PostgresSinkConfig.model_validate({"dsn": "postgresql://h/db", "table": "t", "key": []})
    config = PostgresSinkConfig.model_validate(
        {"dsn": "postgresql://h/db", "table": "x.dibao", "key": ["id_card"]}
    )
    assert config.rejected == "x.dibao_rejected" and config.layout == "columns"
