"""Streaming row readers for dropped files: CSV (UTF-8 or GB18030), JSON lines and XLSX.

A reader never holds more than one row in memory (plus the codec's and openpyxl's small
buffers), so a 1 GB export is read in bounded memory. Each row carries its resume point:
the byte offset after it for CSV and JSON lines, the row number for XLSX (openpyxl's
streaming mode cannot seek, it skips parsed rows instead).

A file that cannot be opened at all raises :class:`FileFormatError` (the source moves it to
``failed/``); a row that cannot be read becomes a :class:`Row` with ``error`` set.
"""

from __future__ import annotations

import codecs
import csv
import datetime
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

Format = Literal["csv", "jsonl", "xlsx"]
Encoding = Literal["auto", "utf-8", "gbk", "gb18030"]

SNIFF_BYTES = 64 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024  # a longer line is an error row, never a memory spike
_EXACT_FLOAT = 2**53
XLSX_INSTALL = "pip install 'govhub[xlsx]'"


class FileFormatError(Exception):
    """The file cannot be read as the configured format (wrong format, encoding, header)."""


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 4x as much to build, per row
class Row:
    number: int  # as a spreadsheet shows it: the header is row ``header_row``
    cells: list[str | None] | dict[str, Any] | None  # CSV/XLSX: cells; JSONL: the object
    offset: int  # resume point after this row (bytes; XLSX: the row number)
    error: str | None = None
    raw_size: int = 0


@dataclass(frozen=True, slots=True)
class ResumePoint:
    row: int
    offset: int


def format_of(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix == ".xls":
        raise FileFormatError(
            "Excel 97-2003 (.xls) files are not supported: save the sheet as .xlsx or CSV"
        )
    raise FileFormatError(f"unknown file type {suffix or '(none)'}: expected .csv, .jsonl, .xlsx")


def detect_encoding(sample: bytes) -> tuple[str, int]:
    """(codec, BOM length) of a text file from its first block.

    Government exports are UTF-8 (often with a BOM) or GBK; GB18030 is a superset of GBK,
    so GBK files decode with it.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8", len(codecs.BOM_UTF8)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileFormatError("UTF-16 text is not supported: export as UTF-8 or GBK")
    for name in ("utf-8", "gb18030"):
        try:
            # Not final: the block may end inside a multi-byte character.
            codecs.getincrementaldecoder(name)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return name, 0
    raise FileFormatError("the file is neither UTF-8 nor GBK/GB18030 text")


def resolve_encoding(configured: Encoding, head: bytes) -> tuple[str, int]:
    if configured == "auto":
        return detect_encoding(head)
    bom = len(codecs.BOM_UTF8) if configured == "utf-8" and head.startswith(codecs.BOM_UTF8) else 0
    return ("gb18030" if configured == "gbk" else configured), bom


class RowReader(ABC):
    """Rows of one file after the header, from a resume point on."""

    header: list[str]

    @abstractmethod
    def rows(self) -> Iterator[Row]: ...

    @abstractmethod
    def remaining_bytes(self, after: Row | None) -> int: ...

    @abstractmethod
    def close(self) -> None: ...


def _clean_header(cells: list[Any]) -> list[str]:
    header = [str(c).strip() if c is not None else "" for c in cells]
    while header and not header[-1]:
        header.pop()
    if not header:
        raise FileFormatError("the header row is empty")
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            raise FileFormatError(f"column {name!r} appears twice in the header")
        seen.add(name)
    return header


class _TextLines:
    """Binary lines decoded one by one, counting the bytes consumed (for resume offsets)."""

    def __init__(self, file: IO[bytes], encoding: str, offset: int) -> None:
        self.file = file
        self.encoding = encoding
        self.offset = offset
        self.problem: str | None = None  # why a line of the current row is unreadable

    def __iter__(self) -> Iterator[str]:
        readline, encoding = self.file.readline, self.encoding
        while True:
            raw = readline(MAX_LINE_BYTES)
            if not raw:
                return
            self.offset += len(raw)
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                self.offset += _skip_line(self.file)
                self.problem = f"a line is longer than {MAX_LINE_BYTES >> 20} MiB"
                yield "\n"
                continue
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError:
                self.problem = f"not valid {encoding} text"
                yield raw.decode(encoding, "replace")


def _skip_line(file: IO[bytes]) -> int:
    """Read past the rest of an over-long line in bounded chunks; returns the bytes skipped."""
    skipped = 0
    while True:
        chunk = file.readline(MAX_LINE_BYTES)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


class CsvReader(RowReader):
    def __init__(
        self,
        path: Path,
        *,
        encoding: Encoding = "auto",
        delimiter: str = ",",
        header_row: int = 1,
        resume: ResumePoint | None = None,
    ) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            self.size = path.stat().st_size
            if self.size == 0:
                raise FileFormatError("the file is empty")
            codec, bom = resolve_encoding(encoding, self._file.read(SNIFF_BYTES))
            self.encoding = codec
            self._file.seek(bom)
            self._lines = _TextLines(self._file, codec, bom)
            self._csv = csv.reader(iter(self._lines), delimiter=delimiter)
            self._row = 0
            header: list[str] | None = None
            while self._row < header_row:
                header = next(self._csv, None)
                self._row += 1
                if header is None:
                    raise FileFormatError(f"the file ends before header row {header_row}")
            assert header is not None
            if self._lines.problem:
                raise FileFormatError(f"the header row: {self._lines.problem}")
            self.header = _clean_header(list(header))
            if resume is not None and resume.row > self._row:
                self._file.seek(resume.offset)
                self._lines.offset = resume.offset
                self._row = resume.row
        except csv.Error as exc:
            self.close()
            raise FileFormatError(f"not a readable CSV file: {exc}") from None
        except BaseException:
            self.close()
            raise

    def rows(self) -> Iterator[Row]:
        lines, width = self._lines, len(self.header)
        while True:
            lines.problem = None
            try:
                cells = next(self._csv, None)
            except csv.Error as exc:
                self._row += 1
                yield Row(self._row, None, lines.offset, f"row {self._row}: {exc}")
                continue
            if cells is None:
                return
            self._row += 1
            if lines.problem:
                yield Row(self._row, None, lines.offset, f"row {self._row}: {lines.problem}")
                continue
            if not cells:
                continue  # a blank line
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                error = f"row {self._row} has {len(cells)} cells, the header {width}"
                yield Row(self._row, None, lines.offset, error)
                continue
            values: list[str | None] = [c.strip() or None for c in cells[:width]]
            if len(values) < width:
                values.extend([None] * (width - len(values)))
            yield Row(self._row, values, lines.offset)

    def remaining_bytes(self, after: Row | None) -> int:
        return self.size - (after.offset if after is not None else self._lines.offset)

    def close(self) -> None:
        self._file.close()


class JsonlReader(RowReader):
    """One JSON object per line; a last line without a newline is a row too (dropped files
    are complete)."""

    def __init__(self, path: Path, resume: ResumePoint | None = None) -> None:
        self.header: list[str] = []
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = path.stat().st_size
        self._row = 0
        self._offset = 0
        if resume is not None and resume.row > 0:
            self._file.seek(resume.offset)
            self._row, self._offset = resume.row, resume.offset

    def rows(self) -> Iterator[Row]:
        readline = self._file.readline
        while True:
            raw = readline(MAX_LINE_BYTES)
            if not raw:
                return
            self._row += 1
            self._offset += len(raw)
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                self._offset += _skip_line(self._file)
                error = f"line {self._row} is longer than {MAX_LINE_BYTES >> 20} MiB"
                yield Row(self._row, None, self._offset, error)
                continue
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield Row(self._row, None, self._offset, f"line {self._row}: invalid JSON: {exc}")
                continue
            if not isinstance(value, dict):
                yield Row(self._row, None, self._offset, f"line {self._row} is not an object")
                continue
            yield Row(self._row, value, self._offset, raw_size=len(raw))

    def remaining_bytes(self, after: Row | None) -> int:
        return self.size - (after.offset if after is not None else self._offset)

    def close(self) -> None:
        self._file.close()


def xlsx_cell_text(value: Any) -> str | None:
    """A spreadsheet cell as the text a person sees (numbers without a spurious ``.0``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            if abs(value) >= _EXACT_FLOAT:
                raise ValueError(
                    f"the number {value:.0f} is too long to be exact: store the column as text"
                )
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


class XlsxReader(RowReader):
    def __init__(
        self,
        path: Path,
        *,
        sheet: str | None = None,
        header_row: int = 1,
        resume: ResumePoint | None = None,
    ) -> None:
        try:
            import openpyxl
        except ImportError:
            raise FileFormatError(f"XLSX support needs openpyxl: {XLSX_INSTALL}") from None
        self.size = path.stat().st_size
        try:
            self._book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # zip, XML and openpyxl errors alike
            raise FileFormatError(f"not a readable XLSX workbook: {exc}") from None
        try:
            if sheet is None:
                ws = self._book.worksheets[0]
            elif sheet in self._book.sheetnames:
                ws = self._book[sheet]
            else:
                raise FileFormatError(
                    f"no sheet {sheet!r} (sheets: {', '.join(self._book.sheetnames)})"
                )
            self._max_row = ws.max_row
            head = next(ws.iter_rows(min_row=header_row, max_row=header_row, values_only=True), ())
            self.header = _clean_header(list(head))
            self._row = header_row
            if resume is not None and resume.row > header_row:
                self._row = resume.row
            self._rows = ws.iter_rows(min_row=self._row + 1, values_only=True)
        except FileFormatError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise FileFormatError(f"not a readable XLSX sheet: {exc}") from None

    def rows(self) -> Iterator[Row]:
        width = len(self.header)
        while True:
            try:
                cells = next(self._rows, None)
            except Exception as exc:  # a damaged part of the workbook
                raise FileFormatError(f"row {self._row + 1} cannot be read: {exc}") from None
            if cells is None:
                return
            self._row += 1
            if not any(c is not None and c != "" for c in cells):
                continue
            if len(cells) > width and any(c not in (None, "") for c in cells[width:]):
                error = f"row {self._row} has cells beyond the {width} header columns"
                yield Row(self._row, None, self._row, error)
                continue
            try:
                values = [xlsx_cell_text(c) for c in cells[:width]]
            except ValueError as exc:
                yield Row(self._row, None, self._row, f"row {self._row}: {exc}")
                continue
            values.extend([None] * (width - len(values)))
            yield Row(self._row, values, self._row)

    def remaining_bytes(self, after: Row | None) -> int:
        if not self._max_row:
            return self.size
        row = after.number if after is not None else self._row
        return int(self.size * max(0, self._max_row - row) / self._max_row)

    def close(self) -> None:
        self._book.close()


def open_reader(
    path: Path,
    fmt: Format,
    *,
    encoding: Encoding = "auto",
    delimiter: str = ",",
    header_row: int = 1,
    sheet: str | None = None,
    resume: ResumePoint | None = None,
) -> RowReader:
    """Open ``path``; raises :class:`FileFormatError` or ``OSError`` when it cannot be read."""
    if fmt == "csv":
        return CsvReader(
            path, encoding=encoding, delimiter=delimiter, header_row=header_row, resume=resume
        )
    if fmt == "jsonl":
        return JsonlReader(path, resume)
    return XlsxReader(path, sheet=sheet, header_row=header_row, resume=resume)
