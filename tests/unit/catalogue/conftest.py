"""Catalogue entries for unit tests, built from plain dicts."""

from __future__ import annotations

from typing import Any

import orjson

SCHEMA = orjson.dumps(
    {
        "type": "record",
        "name": "Thing",
        "fields": [
            {"name": "id", "type": "string", "doc": "编号"},
            {"name": "region_code", "type": "string"},
            {"name": "holder_id_card", "type": "string"},
            {"name": "holder_name", "type": ["null", "string"], "default": None},
            {"name": "size", "type": "int"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            },
            {"name": "issued_on", "type": {"type": "int", "logicalType": "date"}},
            {"name": "seen_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "org", "type": ["null", "string"], "default": None},
        ],
    }
).decode()


def entry(**overrides: Any) -> dict[str, Any]:
    """A valid catalogue entry for :data:`SCHEMA`; keyword arguments replace top-level keys."""
    base: dict[str, Any] = {
        "code": "thing",
        "name": "测试事项登记",
        "department": "mzj",
        "department_name": "朝阳区民政局",
        "share": "conditional",
        "share_conditions": "仅用于核查",
        "classification": "important",
        "region_field": "region_code",
        "key_field": "id",
        "fields": [
            {"name": "id", "title": "编号", "rules": {"pattern": "T[0-9]{4}"}},
            {"name": "region_code", "title": "区划代码"},
            {"name": "holder_id_card", "title": "持有人身份证号", "personal": "id_card"},
            {"name": "holder_name", "title": "持有人姓名", "personal": "name", "required": False},
            {"name": "size", "title": "人数", "rules": {"min": 1, "max": 10}},
            {"name": "amount", "title": "金额", "rules": {"min": "0", "max": "999.99"}},
            {
                "name": "issued_on",
                "title": "发证日期",
                "rules": {"not_future": True, "not_before": "2000-01-01"},
            },
            {"name": "seen_at", "title": "核查时间", "rules": {"not_future": True}},
            {"name": "kind", "title": "类别"},
            {"name": "org", "title": "单位代码", "required": False, "rules": {"format": "uscc"}},
        ],
    }
    base.update(overrides)
    return base


def with_field(name: str, **changes: Any) -> list[dict[str, Any]]:
    """The fields of :func:`entry` with one field changed."""
    return [{**f, **changes} if f["name"] == name else f for f in entry()["fields"]]
