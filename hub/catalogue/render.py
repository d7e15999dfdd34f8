"""Plain-text views of catalogue entries for the terminal (CJK-aware column widths)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from hub.catalogue.model import (
    Classification,
    OpenAttribute,
    PersonalTag,
    ResourceStatus,
    ShareAttribute,
    UpdateCycle,
)


def width(text: str) -> int:
    """Terminal columns of ``text``: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [width(h) for h in headers]
    for row in rows:
        widths = [max(w, width(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (cell + " " * (w - width(cell)) for cell, w in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _label(kind: Any, value: Any) -> str:
    if value is None:
        return "-"
    try:
        return str(kind(value).label)
    except ValueError:
        return str(value)


def resource_table(items: Sequence[dict[str, Any]], scored: bool = False) -> str:
    """The list/search view: one line per resource."""
    headers = [
        "代码 code",
        "名称 name",
        "提供方 department",
        "分级",
        "共享属性",
        "状态",
        "个人信息",
    ]
    if scored:
        headers.append("score")
    rows = []
    for item in items:
        tags = ",".join(_label(PersonalTag, t) for t in item.get("personal_tags", [])) or "-"
        row = [
            str(item["code"]),
            str(item["name"]),
            f"{item['department']} {item['department_name']}",
            _label(Classification, item["classification"]),
            _label(ShareAttribute, item["share"]),
            _label(ResourceStatus, item["status"]),
            tags,
        ]
        if scored:
            row.append(f"{item.get('score', 0):.1f}")
        rows.append(row)
    return table(headers, rows)


def _rules(rules: dict[str, Any]) -> str:
    parts = []
    if rules.get("min") is not None or rules.get("max") is not None:
        parts.append(f"[{rules.get('min') or ''}, {rules.get('max') or ''}]")
    if rules.get("allowed"):
        parts.append("∈{" + ",".join(rules["allowed"]) + "}")
    for key in ("format", "pattern", "max_length", "not_before"):
        if rules.get(key) is not None:
            parts.append(f"{key}={rules[key]}")
    if rules.get("not_future"):
        parts.append("not_future")
    return " ".join(parts) or "-"


def resource_detail(entry: dict[str, Any]) -> str:
    """The show view: the entry's attributes, then one line per information item."""
    share = _label(ShareAttribute, entry["share"])
    if entry.get("share_conditions"):
        share += f"（{entry['share_conditions']}）"
    if entry.get("share_basis"):
        share += f"（依据：{entry['share_basis']}）"
    status = _label(ResourceStatus, entry["status"])
    if entry.get("deprecation"):
        dep = entry["deprecation"]
        status += f"（{dep['at']} by {dep['by']}: {dep['reason']}）"
    schema = entry.get("schema")
    approvals = entry.get("required_approvals")
    head = [
        ("资源代码 code", entry["code"]),
        ("资源名称 name", entry["name"]),
        ("提供方 department", f"{entry['department']} {entry['department_name']}"),
        ("提供方代码", entry.get("department_code") or "-"),
        ("摘要 summary", entry.get("summary") or "-"),
        ("更新周期", _label(UpdateCycle, entry.get("update_cycle"))),
        ("发布日期", entry.get("publish_date") or "-"),
        ("关联资源", ", ".join(entry.get("related") or []) or "-"),
        ("分类分级", _label(Classification, entry["classification"])),
        ("共享属性", share),
        ("共享方式", ", ".join(entry.get("share_methods") or []) or "-"),
        ("开放属性", _label(OpenAttribute, entry.get("open_attribute"))),
        ("状态 status", status),
        ("区划字段 / 主键", f"{entry['region_field']} / {entry['key_field']}"),
        ("subject", entry.get("subject", "-")),
        ("topic", entry.get("topic", "-")),
        ("schema", f"id {schema['id']} version {schema['version']}" if schema else "-"),
        ("审批 approvals", ", ".join(approvals) if approvals else "-"),
    ]
    if not entry.get("subscribable", True):
        head.append(("不可订阅", entry.get("not_subscribable_reason") or "-"))
    label_width = max(width(k) for k, _ in head)
    lines = [f"{k}{' ' * (label_width - width(k))}  {v}" for k, v in head]
    rows = [
        [
            f["name"],
            f["title"],
            f.get("type") or "-",
            _label(PersonalTag, f.get("personal")),
            _label(Classification, f.get("classification")),
            "是" if f.get("required", True) else "否",
            _rules(f.get("rules") or {}),
        ]
        for f in entry["fields"]
    ]
    fields = table(["字段 field", "信息项", "类型", "个人信息", "分级", "必填", "质量规则"], rows)
    return "\n".join([*lines, "", fields])
