"""Subscriber views: projection and masking, compiled once per (writer schema, view).

A :class:`View` is the policy part of a subscription that shapes records. Compiling it
against a writer schema yields a :class:`CompiledView` that knows its own Avro schema and
applies projection and masking to a decoded record with no per-record policy decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from hub.policy.masking import MaskKind, masker
from hub.registry.schemas import AvroCodec


class ViewError(ValueError):
    """A view that cannot be applied to a schema (unknown field, mask on a non-string)."""


@dataclass(frozen=True, slots=True)
class View:
    """Fields to keep (``None``: all) and how to mask some of them."""

    fields: tuple[str, ...] | None = None
    masking: tuple[tuple[str, MaskKind], ...] = ()

    @classmethod
    def of(cls, fields: tuple[str, ...] | None, masking: Mapping[str, MaskKind]) -> View:
        return cls(fields, tuple(sorted(masking.items())))

    @property
    def is_identity(self) -> bool:
        return self.fields is None and not self.masking


def _is_string_type(avro_type: Any) -> bool:
    if avro_type == "string":
        return True
    if isinstance(avro_type, dict):
        return _is_string_type(avro_type.get("type"))
    if isinstance(avro_type, list):
        return all(t == "null" or _is_string_type(t) for t in avro_type) and any(
            _is_string_type(t) for t in avro_type
        )
    return False


@dataclass(frozen=True, slots=True)
class CompiledView:
    view: View
    schema_json: str
    apply: Callable[[Mapping[str, Any]], dict[str, Any]]


def compile_view(view: View, writer_schema_json: str) -> CompiledView:
    """Build the view schema and the record transform for one writer schema."""
    writer = orjson.loads(writer_schema_json)
    fields_by_name = {f["name"]: f for f in writer.get("fields", [])}
    keep = list(fields_by_name) if view.fields is None else list(view.fields)
    unknown = [name for name in keep if name not in fields_by_name]
    if unknown:
        raise ViewError(f"view names fields the schema does not have: {unknown}")
    keep_set = set(keep)
    ordered = [name for name in fields_by_name if name in keep_set]
    masks: dict[str, Callable[[Any], Any]] = {}
    for name, kind in view.masking:
        if name not in fields_by_name:
            raise ViewError(f"masking names field {name!r} that the schema does not have")
        if name not in keep_set:
            continue
        if not _is_string_type(fields_by_name[name]["type"]):
            raise ViewError(f"field {name!r} is not a string and cannot be masked as {kind}")
        masks[name] = masker(kind)

    view_schema = dict(writer)
    view_schema["fields"] = [fields_by_name[name] for name in ordered]
    if view.fields is not None or masks:
        view_schema["name"] = writer["name"] + "_view"
    schema_json = orjson.dumps(view_schema).decode()
    AvroCodec(schema_json)  # fail at compile time, not per record

    plain = tuple(name for name in ordered if name not in masks)
    masked = tuple(masks.items())

    def apply(record: Mapping[str, Any]) -> dict[str, Any]:
        out = {name: record[name] for name in plain}
        for name, fn in masked:
            out[name] = fn(record[name])
        return out

    return CompiledView(view, schema_json, apply)
