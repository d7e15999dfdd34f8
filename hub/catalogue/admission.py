"""Admission of records into a resource's source topic: quality rules, then Avro.

A connector's publisher asks one question per record: does it pass the catalogue's
quality rules and the schema, and if so, what are its Confluent-framed Avro bytes, its key
and its region code? :class:`Admission` answers it, compiled once per (resource, schema).

The answer is either an :data:`Admitted` tuple ``(value, key, region)`` — the framed
value as bytes, the key and region fields as text — or a
:class:`~hub.catalogue.quality.QualityViolation` (reason ``schema-mismatch`` when the
record passes the rules but does not fit the schema).

The Python path (:meth:`Admission.admit_python`) is the reference: ``check_record``, then
``AvroCodec.from_json`` and ``encode``, then the framing. When the native extension
``hub.catalogue._fastrecord`` is built (see ``setup.py``; ``GOVHUB_NO_NATIVE=1`` skips
it), a compiled program takes the records it can prove valid and encodes them itself;
every other record — one that breaks a rule, or holds a value of a type or form the
program does not read — goes to the Python path, which gives the reason and detail. The
answers are identical either way (``tests/unit/catalogue/test_admission.py``), and a
violation is counted in ``govhub_quality_violations_total`` once, by the Python path.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Container, Mapping, Sequence
from typing import Any

import orjson

from hub.catalogue.fields import FieldFormat, FieldType
from hub.catalogue.model import PersonalTag, Resource, ResourceField
from hub.catalogue.quality import QualityViolation, compile_checker
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec, RecordEncodeError

try:
    from hub.catalogue import _fastrecord
except ImportError:  # the extension is optional (see setup.py)
    _fastrecord = None  # type: ignore[assignment]

__all__ = ["NATIVE_AVAILABLE", "Admission", "Admitted", "Verdict"]

NATIVE_AVAILABLE = _fastrecord is not None
"""Whether the native extension is built; without it every record takes the Python path."""

Admitted = tuple[bytes, str, str]
"""``(framed Avro value, key, region code)`` of an admitted record."""

Verdict = Admitted | QualityViolation

_EPOCH = datetime.date(1970, 1, 1)
_PRIMITIVES = {"string", "int", "long", "float", "double", "boolean", "bytes"}
# Logical types read from JSON text by AvroCodec.from_json and encoded natively.
_LOGICAL = {("int", "date"): "date", ("bytes", "decimal"): "decimal"}
_TIMESTAMPS = {"timestamp-millis", "timestamp-micros"}


class Admission:
    """The admission of records into one resource under one writer schema."""

    __slots__ = ("_checker", "_codec", "_key", "_program", "_region", "resource", "schema_id")

    def __init__(self, resource: Resource, codec: AvroCodec, schema_id: int) -> None:
        self.resource = resource
        self.schema_id = schema_id
        self._codec = codec
        self._checker = compile_checker(resource)
        self._key = resource.key_field
        self._region = resource.region_field
        self._program: Any = None
        if _fastrecord is not None:
            plan = native_plan(resource, codec)
            if plan is not None:
                fields, key_index, region_index = plan
                self._program = _fastrecord.Program(
                    fields, schema_id, key_index, region_index, self.admit_python
                )

    @property
    def native(self) -> bool:
        """Whether a compiled program admits records (else the Python path does)."""
        return self._program is not None

    def admit(self, record: Mapping[str, Any], regions: Container[str] | None = None) -> Verdict:
        """The verdict on one record; ``regions`` are the region codes it may carry."""
        if self._program is not None:
            verdict: Verdict = self._program.admit(record, regions)
            return verdict
        return self.admit_python(record, regions)

    def admit_batch(
        self, records: Sequence[Mapping[str, Any] | None], regions: Container[str] | None = None
    ) -> list[Verdict | None]:
        """One verdict per record, ``None`` for ``None`` (input that could not be read)."""
        if self._program is not None:
            verdicts: list[Verdict | None] = self._program.admit_batch(records, regions)
            return verdicts
        admit = self.admit_python
        return [None if r is None else admit(r, regions) for r in records]

    def admit_native(
        self, record: Mapping[str, Any], regions: Container[str] | None = None
    ) -> Admitted | None:
        """The compiled program's own answer: the admitted record, or ``None`` when it
        leaves the record to the Python path (always ``None`` without the program)."""
        if self._program is None:
            return None
        admitted: Admitted | None = self._program.fast(record, regions)
        return admitted

    def admit_python(
        self, record: Mapping[str, Any], regions: Container[str] | None = None
    ) -> Verdict:
        """The reference path: quality rules, then the schema."""
        violation = self._checker.check(record, regions)
        if violation is not None:
            return violation
        codec = self._codec
        try:
            payload = codec.encode(codec.from_json(record))
        except RecordEncodeError as exc:
            return QualityViolation("schema-mismatch", str(exc))
        return (frame(self.schema_id, payload), str(record[self._key]), str(record[self._region]))


# -- compiling the native program ----------------------------------------------------------

FieldPlan = tuple[str, bool, tuple[Any, ...], tuple[int, int] | None, bool, tuple[Any, ...]]


class _NotNative(Exception):
    """The schema or the rules need the Python path."""


def native_plan(
    resource: Resource, codec: AvroCodec
) -> tuple[tuple[FieldPlan, ...], int, int] | None:
    """The field plan of ``_fastrecord.Program`` (see ``_fastrecord.c``), or None when
    the schema or the rules use something only the Python path handles."""
    try:
        schema = orjson.loads(codec.schema_json)
        if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
            raise _NotNative("not a record schema")
        fields = schema.get("fields")
        if not isinstance(fields, list) or not fields:
            raise _NotNative("no fields")
        names = [f.get("name") if isinstance(f, dict) else None for f in fields]
        catalogue = {f.name: f for f in resource.fields}
        if sorted(map(str, names)) != sorted(catalogue) or len(set(names)) != len(names):
            raise _NotNative("the catalogue entry and the schema name different fields")
        named: dict[str, Any] = {}
        namespace = str(schema.get("namespace", ""))
        if "." in str(schema.get("name", "")):
            namespace = str(schema["name"]).rsplit(".", 1)[0]
        plan = tuple(
            _field_plan(spec, catalogue[spec["name"]], resource, named, namespace)
            for spec in fields
        )
        return plan, names.index(resource.key_field), names.index(resource.region_field)
    except _NotNative:
        return None


def _field_plan(
    spec: dict[str, Any],
    item: ResourceField,
    resource: Resource,
    named: dict[str, Any],
    namespace: str,
) -> FieldPlan:
    avro = spec.get("type")
    union: tuple[int, int] | None = None
    if isinstance(avro, list):
        if len(avro) != 2 or "null" not in avro:
            raise _NotNative("unions other than null and one type")
        null_branch = avro.index("null")
        value_branch = 1 - null_branch
        union = (null_branch, value_branch)
        avro = avro[value_branch]
    encoding = _encoding(avro, named, namespace, in_union=union is not None)
    # An absent key takes the field's default; the program writes a null default itself
    # and leaves other defaults to the Python path.
    missing_null = union is not None and "default" in spec and spec["default"] is None
    checks = _checks(item)
    return (str(spec["name"]), item.required, encoding, union, missing_null, checks)


def _encoding(avro: Any, named: dict[str, Any], namespace: str, in_union: bool) -> tuple[Any, ...]:
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return (avro,)
        full = avro if "." in avro else f"{namespace}.{avro}" if namespace else avro
        found = named.get(full, named.get(avro))
        if found is None:
            raise _NotNative(f"unknown or unsupported type {avro!r}")
        return tuple(found)
    if not isinstance(avro, dict):
        raise _NotNative("unexpected schema element")
    kind = avro.get("type")
    logical = avro.get("logicalType")
    if kind == "enum":
        symbols = avro.get("symbols")
        name = avro.get("name")
        if not isinstance(symbols, list) or not isinstance(name, str) or not name:
            raise _NotNative("malformed enum")
        if not all(isinstance(s, str) for s in symbols) or len(set(symbols)) != len(symbols):
            raise _NotNative("malformed enum symbols")
        encoding = ("enum", {s: i for i, s in enumerate(symbols)})
        space = str(avro.get("namespace", namespace))
        full = name if "." in name else f"{space}.{name}" if space else name
        if full in named or name in named:
            raise _NotNative("a named type defined twice")
        named[full] = encoding
        named.setdefault(name, encoding)
        return encoding
    if not isinstance(kind, str) or kind not in _PRIMITIVES:
        raise _NotNative(f"type {kind!r} needs the Python path")
    if logical is None:
        return (kind,)
    if in_union:
        raise _NotNative("logical types inside unions")
    native = _LOGICAL.get((kind, logical))
    if native == "date":
        return ("date",)
    if native == "decimal":
        precision, scale = avro.get("precision"), avro.get("scale", 0)
        if not isinstance(precision, int) or not isinstance(scale, int):
            raise _NotNative("decimal without integer precision and scale")
        if isinstance(precision, bool) or isinstance(scale, bool) or precision < 1 or scale < 0:
            raise _NotNative("decimal precision or scale out of range")
        if scale > 1000:
            raise _NotNative("decimal scale out of range")
        return ("decimal", precision, scale)
    if kind == "long" and logical in _TIMESTAMPS:
        return (logical,)
    raise _NotNative(f"logical type {logical!r} needs the Python path")


def _checks(item: ResourceField) -> tuple[Any, ...]:
    """The native form of ``quality._field_checks(item)``: the same rules, any order."""
    rules = item.rules
    checks: list[tuple[Any, ...]] = []
    if rules.max_length is not None:
        checks.append(("max_length", rules.max_length))
    fmt = rules.format
    if item.personal is PersonalTag.ID_CARD and fmt is None:
        fmt = FieldFormat.ID_CARD
    if fmt is not None:
        checks.append((_FORMATS[fmt],))
    if rules.pattern is not None:
        checks.append(("pattern", re.compile(rules.pattern).fullmatch))
    if rules.allowed is not None:
        checks.append(("allowed", frozenset(rules.allowed)))
    if rules.min is not None or rules.max is not None:
        checks.append(("range", _bound(rules.min), _bound(rules.max)))
    if rules.not_future or rules.not_before is not None:
        before = None if rules.not_before is None else (rules.not_before - _EPOCH).days
        checks.append(("dates", rules.not_future, before, item.type is FieldType.TIMESTAMP))
    return tuple(checks)


_FORMATS = {
    FieldFormat.ID_CARD: "id_card",
    FieldFormat.USCC: "uscc",
    FieldFormat.MOBILE: "mobile",
    FieldFormat.REGION_CODE: "region",
}


def _bound(value: decimal.Decimal | None) -> tuple[bool, int, int, float | None] | None:
    if value is None:
        return None
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise _NotNative("a bound that is not finite")
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient >= 2**64:
        raise _NotNative("a bound with more than 64 bits of digits")
    if not -1000 <= exponent <= 1000:
        raise _NotNative("a bound's exponent out of range")
    as_double = float(value)
    exact = as_double if decimal.Decimal(as_double) == value else None
    return (bool(sign), coefficient, exponent, exact)
