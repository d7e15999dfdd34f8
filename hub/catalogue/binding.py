"""A catalogue entry checked against its Avro schema: same fields, types filled in.

The schema is the truth about value types; the catalogue entry says what the values mean.
:func:`bind_schema` refuses an entry whose information items do not match the schema's
fields one to one, and returns the entry with each item's type taken from the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from hub.catalogue.fields import FieldType
from hub.catalogue.model import Resource
from hub.registry.schemas import SchemaError, canonical

_PRIMITIVES = {
    t.value: t
    for t in (
        FieldType.STRING,
        FieldType.INT,
        FieldType.LONG,
        FieldType.FLOAT,
        FieldType.DOUBLE,
        FieldType.BOOLEAN,
        FieldType.BYTES,
    )
}
_LOGICAL = {
    "decimal": FieldType.DECIMAL,
    "date": FieldType.DATE,
    "time-millis": FieldType.TIME,
    "time-micros": FieldType.TIME,
    "timestamp-millis": FieldType.TIMESTAMP,
    "timestamp-micros": FieldType.TIMESTAMP,
    "local-timestamp-millis": FieldType.TIMESTAMP,
    "local-timestamp-micros": FieldType.TIMESTAMP,
}
_NAMED = {"record": FieldType.RECORD, "enum": FieldType.ENUM, "fixed": FieldType.FIXED}


class CatalogueValidationError(ValueError):
    """A catalogue entry that is invalid in itself or does not fit its schema."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class SchemaField:
    name: str
    type: FieldType
    nullable: bool
    has_default: bool
    doc: str


def schema_fields(schema_json: str) -> list[SchemaField]:
    """The top-level fields of an Avro record schema, with their catalogue types."""
    try:
        canonical(schema_json)
        doc = orjson.loads(schema_json)
    except (SchemaError, orjson.JSONDecodeError) as exc:
        raise CatalogueValidationError([f"schema: {exc}"]) from None
    if not isinstance(doc, dict) or doc.get("type") != "record":
        raise CatalogueValidationError(["schema: a resource schema must be an Avro record"])
    named: dict[str, FieldType] = {}
    out = []
    for item in doc.get("fields", []):
        field_type, nullable = _field_type(item["type"], named)
        out.append(
            SchemaField(
                item["name"], field_type, nullable, "default" in item, str(item.get("doc", ""))
            )
        )
    return out


def _field_type(avro: Any, named: dict[str, FieldType]) -> tuple[FieldType, bool]:
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        nullable = len(branches) < len(avro)
        if len(branches) == 1:
            return _field_type(branches[0], named)[0], nullable
        return FieldType.UNION, nullable
    if isinstance(avro, str):
        if avro == "null":
            return FieldType.UNION, True
        return _PRIMITIVES.get(avro) or named.get(avro.rsplit(".", 1)[-1], FieldType.RECORD), False
    logical = _LOGICAL.get(str(avro.get("logicalType")))
    if logical is not None:
        return logical, False
    kind = avro.get("type")
    if kind in _NAMED:
        named[str(avro.get("name", ""))] = _NAMED[kind]
        if kind == "record":
            for sub in avro.get("fields", []):
                _field_type(sub["type"], named)
        return _NAMED[kind], False
    if kind in ("array", "map"):
        _field_type(avro.get("items") or avro.get("values"), named)
        return FieldType(kind), False
    return _field_type(kind, named)


def bind_schema(entry: Resource | Mapping[str, Any], schema_json: str) -> Resource:
    """The catalogue entry with its field types from the schema, or every problem found."""
    fields = schema_fields(schema_json)
    raw = entry.model_dump(mode="json") if isinstance(entry, Resource) else dict(entry)
    items = raw.get("fields")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise CatalogueValidationError(["fields: a list of information items is required"])
    by_name = {f.name: f for f in fields}
    declared = [str(i.get("name")) for i in items]
    problems = []
    missing = [n for n in by_name if n not in declared]
    extra = [n for n in declared if n not in by_name]
    if missing:
        problems.append(f"schema fields {missing} have no catalogue entry (信息项)")
    if extra:
        problems.append(f"catalogue fields {extra} are not in the schema")
    bound = []
    for item in items:
        spec = by_name.get(str(item.get("name")))
        if spec is None:
            bound.append(item)
            continue
        declared_type = item.get("type")
        if declared_type not in (None, spec.type.value):
            problems.append(
                f"field {spec.name!r} is declared {declared_type} but the schema has {spec.type}"
            )
        if item.get("required", True) is False and not (spec.nullable or spec.has_default):
            problems.append(
                f"field {spec.name!r} is optional in the catalogue but the schema gives it "
                "neither null nor a default"
            )
        bound.append(
            {**item, "type": spec.type.value, "description": item.get("description") or spec.doc}
        )
    try:
        resource = validate_entry({**raw, "fields": bound})
    except CatalogueValidationError as exc:
        raise CatalogueValidationError(problems + exc.problems) from None
    if problems:
        raise CatalogueValidationError(problems)
    return resource


def validate_entry(raw: Mapping[str, Any]) -> Resource:
    """A :class:`Resource` from JSON-like data, or a :class:`CatalogueValidationError`."""
    try:
        return Resource.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueValidationError(validation_problems(exc)) from None


def validation_problems(exc: ValidationError) -> list[str]:
    """One readable line per pydantic error: ``fields.2.personal: Input should be ...``."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return problems
