"""Avro schemas: parsing, canonical form, binary codecs."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastavro
import orjson
from fastavro.types import Schema as ParsedSchema


class SchemaError(ValueError):
    """An Avro schema that cannot be parsed or used."""


class RecordDecodeError(ValueError):
    """Avro bytes that do not decode with the writer schema."""


class RecordEncodeError(ValueError):
    """A record that does not fit the schema."""


def canonical(schema: Mapping[str, Any] | str) -> str:
    """The Parsing Canonical Form of a schema (Avro spec), as compact JSON."""
    raw = orjson.loads(schema) if isinstance(schema, str) else dict(schema)
    try:
        parsed = fastavro.parse_schema(raw, _write_hint=False)
    except Exception as exc:  # fastavro raises several exception types
        raise SchemaError(f"invalid Avro schema: {exc}") from exc
    return str(fastavro.schema.to_parsing_canonical_form(parsed))


def schema_id_for(canonical_form: str) -> int:
    """A stable 31-bit id derived from the canonical form (no coordination between writers)."""
    digest = hashlib.sha256(canonical_form.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, float):
        value = repr(value)
    result = decimal.Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal")
    return result


def _to_date(value: Any) -> Any:
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


def _to_timestamp(value: Any) -> Any:
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def _json_converter(avro_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(avro_type, list):
        for branch in avro_type:
            conv = _json_converter(branch)
            if conv is not None:
                return conv
        return None
    if not isinstance(avro_type, dict):
        return None
    logical = avro_type.get("logicalType")
    if logical == "decimal":
        return _to_decimal
    if logical == "date":
        return _to_date
    if logical in ("timestamp-millis", "timestamp-micros"):
        return _to_timestamp
    return None


def json_default(value: Any) -> Any:
    """``orjson`` fallback for Avro logical values (decimals as strings)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


@dataclass(slots=True)
class AvroCodec:
    """Encoder/decoder for one schema; parse once, use per record."""

    schema_json: str
    parsed: ParsedSchema = field(init=False)
    field_names: tuple[str, ...] = field(init=False)
    _json_converters: dict[str, Callable[[Any], Any]] = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.parsed = fastavro.parse_schema(orjson.loads(self.schema_json))
        except Exception as exc:
            raise SchemaError(f"invalid Avro schema: {exc}") from exc
        fields = self.parsed.get("fields", []) if isinstance(self.parsed, dict) else []
        self.field_names = tuple(f["name"] for f in fields)
        self._json_converters = {
            f["name"]: conv for f in fields if (conv := _json_converter(f["type"])) is not None
        }

    def from_json(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Convert JSON-typed input (decimals and dates as strings) to Avro logical types."""
        out = dict(record)
        for name, convert in self._json_converters.items():
            value = out.get(name)
            if value is not None:
                try:
                    out[name] = convert(value)
                except (ValueError, ArithmeticError, TypeError) as exc:
                    raise RecordEncodeError(f"field {name!r}: {exc}") from None
        return out

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, self.parsed, dict(record), strict_allow_default=True)
        except Exception as exc:
            raise RecordEncodeError(str(exc)) from exc
        return buf.getvalue()

    def decode(self, payload: bytes | memoryview) -> dict[str, Any]:
        try:
            record = fastavro.schemaless_reader(io.BytesIO(payload), self.parsed, None)
        except Exception as exc:
            raise RecordDecodeError(f"Avro payload does not match the schema: {exc}") from exc
        if not isinstance(record, dict):
            raise RecordDecodeError("Avro payload is not a record")
        return record
