"""From spreadsheet cells to schema fields: column mapping and type coercion.

Exports carry Chinese headers (``身份证号``) and everything as text (``2026/1/2``,
``1,234.50``). A :class:`RowMapper` renames the mapped columns to schema fields, keeps only
those (so an export's extra personal columns never enter the hub, not even its dead
letters), and turns text into the configured types. A cell that does not convert gives the
row one clear error naming the column and the value's expected form.
"""

from __future__ import annotations

import datetime
import decimal
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from connectors.sources.formats import FileFormatError

FieldType = Literal["str", "int", "decimal", "float", "date", "datetime", "bool"]


class CoercionError(ValueError):
    pass


def _nfkc(text: str) -> str:
    """Full-width digits and punctuation (１２３，．) as ASCII."""
    return (text if text.isascii() else unicodedata.normalize("NFKC", text)).strip()


def _ascii(text: str) -> str:
    """A number's text without spaces and thousands separators."""
    return _nfkc(text).replace(",", "").replace(" ", "")


def to_int(text: str) -> int:
    clean = _ascii(text)
    if len(clean) <= 19:
        try:
            return int(clean)
        except ValueError:
            pass
    try:
        number = decimal.Decimal(clean)
    except decimal.InvalidOperation:
        raise CoercionError(f"{text!r} is not a whole number") from None
    if not number.is_finite() or number.adjusted() > 18:
        raise CoercionError(f"{text!r} is not a whole number within 64 bits")
    if number != number.to_integral_value():
        raise CoercionError(f"{text!r} is not a whole number")
    return int(number)


def to_decimal(text: str) -> str:
    """A decimal as canonical text (``1234.50``): exact, and what the Avro codec parses."""
    clean = _ascii(text).removeprefix("¥").removesuffix("元")
    try:
        number = decimal.Decimal(clean)
    except decimal.InvalidOperation:
        raise CoercionError(f"{text!r} is not a number") from None
    if not number.is_finite():
        raise CoercionError(f"{text!r} is not a finite number")
    return format(number, "f")


def to_float(text: str) -> float:
    try:
        value = float(_ascii(text))
    except ValueError:
        raise CoercionError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CoercionError(f"{text!r} is not a finite number")
    return value


_DATE = re.compile(
    r"(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
)
DATE_FORMS = "2026-01-02, 2026/1/2, 2026年1月2日 or 20260102"


def _parse_date(text: str) -> tuple[datetime.date, datetime.time | None]:
    m = _DATE.fullmatch(_nfkc(text))
    if m is None:
        raise CoercionError(f"{text!r} is not a date (expected {DATE_FORMS})")
    year, month, day = int(m[1]), int(m[2] or m[4]), int(m[3] or m[5])
    try:
        date = datetime.date(year, month, day)
        time = datetime.time(int(m[6]), int(m[7]), int(m[8] or 0)) if m[6] else None
    except ValueError as exc:
        raise CoercionError(f"{text!r} is not a valid date: {exc}") from None
    return date, time


def to_date(text: str) -> str:
    """ISO ``YYYY-MM-DD`` (a time part, as spreadsheets add, is dropped)."""
    return _parse_date(text)[0].isoformat()


def to_datetime(text: str) -> str:
    try:
        return datetime.datetime.fromisoformat(text.strip()).isoformat()
    except ValueError:
        pass
    date, time = _parse_date(text)
    return datetime.datetime.combine(date, time or datetime.time()).isoformat()


_TRUE = {"true", "1", "y", "yes", "是", "t"}
_FALSE = {"false", "0", "n", "no", "否", "f"}


def to_bool(text: str) -> bool:
    key = text.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise CoercionError(f"{text!r} is not a yes/no value (是/否, true/false, 1/0)")


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int": to_int,
    "decimal": to_decimal,
    "float": to_float,
    "date": to_date,
    "datetime": to_datetime,
    "bool": to_bool,
}


_CACHE_LIMIT = 4096  # converted values kept per field
_MISSING = object()


class RowMapper:
    """Maps one file's rows (cells by header position, or JSON objects) to records.

    ``columns`` maps source column names to schema fields; when it is empty the column
    names are the field names. ``types`` names a type per field (default: text).

    Conversions are pure functions of the cell text, and exports repeat the same dates,
    amounts and counts row after row: each typed field keeps its last few thousand
    conversions.
    """

    def __init__(self, columns: Mapping[str, str], types: Mapping[str, FieldType]) -> None:
        self.columns = dict(columns)
        self.types = dict(types)
        self._plan: list[tuple[int, str, str, Callable[[str], Any] | None, dict[str, Any]]] = []

    def _converter(self, field: str) -> Callable[[str], Any] | None:
        kind = self.types.get(field, "str")
        return None if kind == "str" else CONVERTERS[kind]

    def bind(self, header: Sequence[str]) -> None:
        """Plan the mapping for a file with ``header``; a mapped column missing from it
        makes the whole file unreadable (rather than every row failing the same way)."""
        position = {name: i for i, name in enumerate(header) if name}
        if self.columns:
            missing = [c for c in self.columns if c not in position]
            if missing:
                raise FileFormatError(
                    f"the header lacks column(s) {', '.join(missing)} "
                    f"(it has: {', '.join(n for n in header if n)})"
                )
            wanted = [(position[c], c, f) for c, f in self.columns.items()]
        else:
            wanted = [(i, n, n) for n, i in position.items()]
        self._plan = [(i, column, f, self._converter(f), {}) for i, column, f in wanted]

    def map_cells(self, cells: Sequence[str | None]) -> dict[str, Any]:
        """Raises :class:`CoercionError` naming the column for the first bad cell."""
        out: dict[str, Any] = {}
        for index, column, field, convert, converted in self._plan:
            text = cells[index]
            if text is None or convert is None:
                out[field] = text
                continue
            value = converted.get(text, _MISSING)
            if value is _MISSING:
                try:
                    value = convert(text)
                except CoercionError as exc:
                    raise CoercionError(f"column {_label(column, field)}: {exc}") from None
                if len(converted) >= _CACHE_LIMIT:
                    converted.clear()
                converted[text] = value
            out[field] = value
        return out

    def map_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON object: renamed and filtered like a row; only text values are converted
        (JSON numbers and booleans already have their type)."""
        if self.columns:
            pairs = [(c, f) for c, f in self.columns.items() if c in obj]
        else:
            pairs = [(k, k) for k in obj]
        out: dict[str, Any] = {}
        for column, field in pairs:
            value = obj[column]
            convert = self._converter(field)
            if isinstance(value, str) and convert is not None:
                value = value.strip()
                try:
                    value = convert(value) if value else None
                except CoercionError as exc:
                    raise CoercionError(f"field {_label(column, field)}: {exc}") from None
            out[field] = value
        return out


def _label(column: str, field: str) -> str:
    return repr(column) if column == field else f"{column!r} ({field})"
