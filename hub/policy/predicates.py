"""Row filters: simple predicates on a record's fields, compiled once per writer schema.

A subscription's row filter is its jurisdiction (a region-code prefix, matched by the
router's prefix index) plus optional predicates, all of which must hold. Each predicate
compares one field with a constant: equality (``eq``, ``ne``), range (``lt``, ``le``,
``gt``, ``ge``) or set membership (``in``, ``not_in``). Constants arrive as JSON and are
converted to the field's Avro type at compile time (decimals, dates, timestamps, enum
symbols), so the per-record test is one dict lookup and one comparison. A null field value
satisfies no predicate.
"""

from __future__ import annotations

import datetime
import decimal
import operator
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool
RecordTest = Callable[[Mapping[str, Any]], bool]

MAX_SET_SIZE = 1000


class PredicateError(ValueError):
    """A predicate that does not fit the schema (unknown field, wrong type, bad operator)."""


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    IN = "in"
    NOT_IN = "not_in"


_ORDERED = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
_SETS = frozenset({Op.IN, Op.NOT_IN})
_COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}


class Predicate(BaseModel):
    """``field op value`` (or ``field in values``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str = Field(min_length=1, max_length=200)
    op: Op
    value: Scalar | None = Field(default=None, description="for eq, ne, lt, le, gt, ge")
    values: tuple[Scalar, ...] | None = Field(
        default=None, max_length=MAX_SET_SIZE, description="for in, not_in"
    )

    @model_validator(mode="after")
    def _operands(self) -> Predicate:
        if self.op in _SETS:
            if not self.values or self.value is not None:
                raise ValueError(f"'{self.op.value}' needs a non-empty 'values' list only")
        elif self.value is None or self.values is not None:
            raise ValueError(f"'{self.op.value}' needs a single 'value'")
        return self

    def describe(self) -> str:
        operand = list(self.values) if self.values is not None else self.value
        return f"{self.field} {self.op.value} {operand!r}"


# -- constants converted to the field's type ----------------------------------------------
def _non_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        if len(branches) != 1:
            raise PredicateError("predicates work on fields of one type (or that type or null)")
        return branches[0]
    return avro_type


def _converter(avro_type: Any, name: str) -> tuple[Callable[[Scalar], Any], bool]:
    """How to turn a JSON constant into a value comparable with the decoded field, and
    whether the type is ordered (may use lt/le/gt/ge)."""
    t = _non_null(avro_type)
    logical = t.get("logicalType") if isinstance(t, dict) else None
    base = t.get("type") if isinstance(t, dict) else t

    def fail(expected: str, value: Scalar) -> PredicateError:
        return PredicateError(f"field {name!r} is {expected}; {value!r} does not compare with it")

    if logical == "decimal":

        def to_decimal(v: Scalar) -> Any:
            if isinstance(v, bool):
                raise fail("a decimal", v)
            try:
                result = decimal.Decimal(repr(v) if isinstance(v, float) else v)
            except (decimal.InvalidOperation, ValueError):
                raise fail("a decimal", v) from None
            if not result.is_finite():
                raise fail("a decimal", v)
            return result

        return to_decimal, True
    if logical == "date":

        def to_date(v: Scalar) -> Any:
            if not isinstance(v, str):
                raise fail("a date (YYYY-MM-DD)", v)
            try:
                return datetime.date.fromisoformat(v)
            except ValueError:
                raise fail("a date (YYYY-MM-DD)", v) from None

        return to_date, True
    if logical in ("timestamp-millis", "timestamp-micros"):

        def to_timestamp(v: Scalar) -> Any:
            if not isinstance(v, str):
                raise fail("a timestamp (ISO 8601)", v)
            try:
                ts = datetime.datetime.fromisoformat(v)
            except ValueError:
                raise fail("a timestamp (ISO 8601)", v) from None
            return ts if ts.tzinfo else ts.replace(tzinfo=datetime.UTC)

        return to_timestamp, True
    if base in ("int", "long", "float", "double"):

        def to_number(v: Scalar) -> Any:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise fail("a number", v)
            return v

        return to_number, True
    if base == "string":

        def to_str(v: Scalar) -> Any:
            if not isinstance(v, str):
                raise fail("a string", v)
            return v

        return to_str, True
    if base == "boolean":

        def to_bool(v: Scalar) -> Any:
            if not isinstance(v, bool):
                raise fail("a boolean", v)
            return v

        return to_bool, False
    if base == "enum" and isinstance(t, dict):
        symbols = frozenset(t.get("symbols", ()))

        def to_symbol(v: Scalar) -> Any:
            if v not in symbols:
                raise fail(f"an enum of {sorted(symbols)}", v)
            return v

        return to_symbol, False
    raise PredicateError(f"field {name!r} has a type predicates cannot compare: {t!r}")


def field_converter(fields: Mapping[str, Any], name: str) -> tuple[Callable[[Scalar], Any], bool]:
    """(convert, ordered) for field ``name`` of a writer schema's ``fields``: ``convert``
    turns a JSON constant into the field's Avro value (raising :class:`PredicateError`
    when it does not fit); ``ordered`` says whether ranges apply. Verification (核验) uses
    it to compare claimed values exactly as an ``eq`` predicate would."""
    if name not in fields:
        raise PredicateError(f"filter names field {name!r} that the schema does not have")
    return _converter(fields[name]["type"], name)


def _compile_one(predicate: Predicate, fields: Mapping[str, Any]) -> RecordTest:
    name = predicate.field
    convert, ordered = field_converter(fields, name)
    if predicate.op in _ORDERED and not ordered:
        raise PredicateError(f"field {name!r} has no order; use eq, ne, in or not_in")
    if predicate.op in _SETS:
        assert predicate.values is not None
        members = frozenset(convert(v) for v in predicate.values)
        if predicate.op is Op.IN:
            return lambda record: record[name] in members
        return lambda record: (v := record[name]) is not None and v not in members
    assert predicate.value is not None
    target = convert(predicate.value)
    if predicate.op is Op.EQ:
        return lambda record: record[name] == target
    compare = _COMPARE[predicate.op]

    def test(record: Mapping[str, Any]) -> bool:
        v = record[name]
        return v is not None and compare(v, target)

    return test


def accept_all(record: Mapping[str, Any]) -> bool:
    return True


def compile_predicates(
    predicates: Sequence[Predicate], writer_fields: Mapping[str, Any]
) -> RecordTest:
    """One test for all ``predicates`` (logical AND) against decoded records of a writer
    schema whose fields (name → Avro field dict) are ``writer_fields``.

    Raises :class:`PredicateError` at compile time for anything the schema cannot satisfy;
    the returned function never raises for a record that decoded with that schema.
    """
    tests = tuple(_compile_one(p, writer_fields) for p in predicates)
    if not tests:
        return accept_all
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda record: first(record) and second(record)

    def every(record: Mapping[str, Any]) -> bool:
        # A plain loop: all() over a generator costs a generator object per record.
        for test in tests:  # noqa: SIM110
            if not test(record):
                return False
        return True

    return every
