"""A CSV file sink with exactly-once writes, for people who open the file in Excel.

Like the JSON-lines sink, rows are appended and the cursor document (``<path>.cursor``)
stores the file's length after each write, so a restart cuts off a write whose cursor was
never stored. The first line is a header: the field names, or the titles given in the
config (``titles = { id_card = "身份证号" }``).

Encodings: UTF-8, UTF-8 with a byte-order mark (Excel then detects UTF-8 by itself), GBK
(what Excel on a Chinese Windows assumes) and GB18030. A character GBK cannot encode — a
rare name character, say — is written as an ``&#NNNNN;`` reference instead of being
dropped or stopping the sink; use GB18030 to keep every character as text.

Columns: the configured ones, or the fields of the first record. When records later carry
a field the header lacks (the resource's schema grew), the current file is closed, renamed
``<stem>.<timestamp><suffix>``, and a new file starts with the wider header: nothing is
dropped, and no file has rows that do not match its header.
"""

from __future__ import annotations

import base64
import csv
import datetime
import decimal
import io
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.sinks.base import Cursor, DeliveredRecord, Sink, dumps
from connectors.sinks.state import CursorFile, cursor_doc, cursor_from_doc, fsync_dir, open_at

log = logging.getLogger(__name__)

Encoding = Literal["utf-8", "utf-8-sig", "gbk", "gb18030"]
LINEAGE = ("_record_id", "_source", "_ingested_at")
_BOM = "\ufeff".encode()
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LONG_DIGITS = re.compile(r"[0-9]{12,}[Xx]?")


class CsvSinkConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path = Field(description="the CSV file; its cursor goes to <path>.cursor")
    encoding: Encoding = Field(
        default="utf-8", description="utf-8, utf-8-sig (Excel-friendly UTF-8), gbk or gb18030"
    )
    columns: tuple[str, ...] = Field(
        default=(), description="fields to write, in order; empty: every field of the records"
    )
    titles: dict[str, str] = Field(
        default_factory=dict, description='header text per field, e.g. id_card = "身份证号"'
    )
    lineage: bool = Field(default=True, description="add _record_id, _source, _ingested_at")
    excel: bool = Field(
        default=False,
        description="guard cells for Excel: long digit strings (ID numbers) stay text and "
        "cells that look like formulas are quoted with a leading apostrophe",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1)


def cell(value: Any, excel: bool = False) -> str:
    """One value as CSV text."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float | decimal.Decimal):
        text = str(value)
    elif isinstance(value, datetime.date | datetime.time):
        text = value.isoformat()
    elif isinstance(value, bytes):
        text = base64.b64encode(value).decode()
    else:
        text = dumps(value).decode()
    if excel and isinstance(value, str):
        if _LONG_DIGITS.fullmatch(text):
            return f'="{text}"'  # Excel would show 1.10105E+17 and lose the last digits
        if text.startswith(_FORMULA_START):
            return "'" + text  # data from elsewhere must not run as a formula
    return text


class CsvSink(Sink):
    def __init__(self, config: CsvSinkConfig) -> None:
        self.config = config
        self.path = config.path
        self._state = CursorFile(self.path.with_name(self.path.name + ".cursor"))
        doc = self._state.read() or {}
        self._columns: list[str] = list(config.columns or doc.get("columns") or [])
        self._file, self._fresh = open_at(self.path, int(doc.get("size", 0)))
        self._codec = "utf-8" if config.encoding == "utf-8-sig" else config.encoding
        self.records_written = 0
        self.replaced_characters = 0

    @classmethod
    def from_config(cls, name: str, config: CsvSinkConfig) -> CsvSink:
        return cls(config)

    def load_cursor(self) -> Cursor | None:
        doc = self._state.read()
        return None if doc is None else cursor_from_doc(doc, self._state.path)

    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        if records:
            self._widen_for(records)
            out = io.StringIO()
            writer = csv.writer(out, delimiter=self.config.delimiter, lineterminator="\r\n")
            if self._fresh:
                writer.writerow(self._header())
            excel = self.config.excel
            for record in records:
                row = [cell(record.data.get(c), excel) for c in self._columns]
                if self.config.lineage:
                    row += [
                        record.record_id,
                        f"{record.source_topic}/{record.source_partition}/{record.source_offset}",
                        str(record.ingested_at_ms),
                    ]
                writer.writerow(row)
            data = self._encode(out.getvalue())
            if self._fresh and self.config.encoding == "utf-8-sig":
                data = _BOM + data
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._fresh = False
        doc = {**cursor_doc(cursor), "size": self._file.tell(), "columns": self._columns}
        self._state.write(doc)
        self.records_written += len(records)

    def _header(self) -> list[str]:
        header = [self.config.titles.get(c, c) for c in self._columns]
        return header + list(LINEAGE) if self.config.lineage else header

    def _encode(self, text: str) -> bytes:
        try:
            return text.encode(self._codec)
        except UnicodeEncodeError:
            data = text.encode(self._codec, errors="xmlcharrefreplace")
            replaced = sum(1 for ch in text if not _encodable(ch, self._codec))
            self.replaced_characters += replaced
            log.warning(
                "%d characters not in %s written as &#NNNNN; references in %s (use gb18030 to "
                "keep them as text)",
                replaced,
                self._codec,
                self.path,
            )
            return data

    def _widen_for(self, records: Sequence[DeliveredRecord]) -> None:
        """Fix the columns on the first write; start a new file when new fields appear."""
        if self.config.columns:
            return
        new: list[str] = []
        for record in records:
            for name in record.data:
                if name not in self._columns and name not in new:
                    new.append(name)
        if not new:
            return
        if not self._fresh:
            self._rotate()
        self._columns += new

    def _rotate(self) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
        moved = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
        self._file.close()
        os.replace(self.path, moved)
        fsync_dir(self.path.parent)
        # Crash here: no data file, so open_at starts a fresh one. From the next line on the
        # cursor says 0 bytes, so a half-written new file is cut back to nothing.
        previous = self._state.read()
        if previous is not None:
            self._state.write({**previous, "size": 0})
        log.info("new fields arrived: %s moved aside; a new file gets the wider header", moved)
        self._file, self._fresh = open_at(self.path, 0)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _encodable(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
    except UnicodeEncodeError:
        return False
    return True
