"""Conformance cases of the file sources: ``jsonl-file``, and ``file`` with GBK CSV and XLSX."""

from __future__ import annotations

import csv
import datetime
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from tests.conformance.harness import CaseEnv, ConnectorCase, Row

# The export's own headers (Chinese, as departments send them) → schema fields.
COLUMNS = {
    "身份证号": "id_card",
    "姓名": "name",
    "区划代码": "region_code",
    "保障人数": "household_size",
    "救助金额": "amount",
    "核定日期": "approved_on",
    "低保类别": "category",
    "家庭住址": "address",
}
TYPES = {"household_size": "int", "amount": "decimal", "approved_on": "date"}


class FileFeeder:
    """Writes the rows as files, each complete before it appears under its final name."""

    def __init__(self, target: Path, write: Any, rows: Sequence[Row], files: int = 1) -> None:
        self.target = target
        self.write = write
        self.rows = list(rows)
        self.files = files

    def start(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        per_file = -(-len(self.rows) // self.files) or 1
        for n in range(self.files):
            chunk = self.rows[n * per_file : (n + 1) * per_file]
            name = self.target if self.files == 1 else self._numbered(n)
            partial = name.with_name(name.name + ".tmp")
            self.write(partial, chunk)
            os.replace(partial, name)

    def _numbered(self, n: int) -> Path:
        return self.target.with_name(f"{self.target.stem}-{n + 1}{self.target.suffix}")

    def wait(self, timeout: float) -> None:
        pass

    def stop(self) -> None:
        pass


def write_jsonl(path: Path, rows: Sequence[Row]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def _slashed(iso: str) -> str:
    """2026-01-05 as spreadsheets export it: 2026/1/5."""
    d = datetime.date.fromisoformat(iso)
    return f"{d.year}/{d.month}/{d.day}"


def write_gbk_csv(path: Path, rows: Sequence[Row]) -> None:
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\r\n")
    out.writerow(["序号", *COLUMNS])
    for n, row in enumerate(rows, 1):
        values = [row[f] for f in COLUMNS.values()]
        values[5] = _slashed(row["approved_on"])
        out.writerow([n, *values])
    path.write_bytes(text.getvalue().encode("gbk"))


def write_xlsx(path: Path, rows: Sequence[Row]) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("低保名册")
    sheet.append(list(COLUMNS))
    for row in rows:
        values: list[Any] = [row[f] for f in COLUMNS.values()]
        values[4] = float(row["amount"])
        values[5] = datetime.datetime.fromisoformat(row["approved_on"])
        sheet.append(values)
    with path.open("wb") as f:  # a .tmp name: openpyxl insists on the extension otherwise
        book.save(f)


def jsonl_settings(env: CaseEnv) -> dict[str, Any]:
    return {"path": str(env.tmp / "dibao.jsonl")}


def drop_settings(env: CaseEnv) -> dict[str, Any]:
    return {
        "folder": str(env.tmp / "drop"),
        "settle_s": 0,
        "columns": COLUMNS,
        "types": TYPES,
    }


CASES = [
    ConnectorCase(
        name="jsonl-file",
        type="jsonl-file",
        settings=jsonl_settings,
        feed=lambda env, rows: FileFeeder(env.tmp / "dibao.jsonl", write_jsonl, rows),
    ),
    ConnectorCase(
        name="file-csv-gbk",
        type="file",
        settings=drop_settings,
        feed=lambda env, rows: FileFeeder(env.tmp / "drop" / "低保.csv", write_gbk_csv, rows, 2),
    ),
    ConnectorCase(
        name="file-xlsx",
        type="file",
        settings=drop_settings,
        feed=lambda env, rows: FileFeeder(env.tmp / "drop" / "低保.xlsx", write_xlsx, rows),
        requires=("openpyxl",),
    ),
]
