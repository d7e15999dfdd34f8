"""Subscriber views: row filter, projection and masking, compiled once per (writer schema,
view).

A :class:`View` is the policy part of a subscription that selects and shapes records.
Compiling it against a writer schema yields a :class:`CompiledView` that knows its own Avro
schema, tests a decoded record against the row filter (:attr:`CompiledView.accepts`) and
applies projection and masking (:attr:`CompiledView.apply`) with no per-record policy
decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hub.policy.masking import DATE_KINDS, STRING_KINDS, Mask, MaskKind, mask_kind, masker
from hub.policy.predicates import Predicate, PredicateError, RecordTest, compile_predicates
from hub.registry.schemas import AvroCodec


class ViewError(ValueError):
    """A view that cannot be applied to a schema (unknown field, mask on a wrong type)."""


@dataclass(frozen=True, slots=True)
class View:
    """Rows to keep (predicates), fields to keep (``None``: all) and how to mask some.

    ``pseudonym_key`` is the recipient's key for :attr:`MaskKind.PSEUDONYM` masks; it makes
    views of different recipients distinct, so each compiles with its own key.
    """

    fields: tuple[str, ...] | None = None
    masking: tuple[tuple[str, Mask], ...] = ()
    filters: tuple[Predicate, ...] = ()
    pseudonym_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls,
        fields: tuple[str, ...] | None,
        masking: Mapping[str, Mask],
        filters: tuple[Predicate, ...] = (),
        pseudonym_key: bytes | None = None,
    ) -> View:
        return cls(fields, tuple(sorted(masking.items())), filters, pseudonym_key)

    @property
    def is_identity(self) -> bool:
        """Every record, every field, unmasked: the source bytes can pass through."""
        return self.fields is None and not self.masking and not self.filters

    @property
    def needs_pseudonym_key(self) -> bool:
        return any(mask_kind(m) is MaskKind.PSEUDONYM for _, m in self.masking)


def _branches(avro_type: Any) -> list[Any]:
    return avro_type if isinstance(avro_type, list) else [avro_type]


def _is_string_type(avro_type: Any) -> bool:
    if avro_type == "string":
        return True
    if isinstance(avro_type, dict):
        return "logicalType" not in avro_type and _is_string_type(avro_type.get("type"))
    if isinstance(avro_type, list):
        return all(t == "null" or _is_string_type(t) for t in avro_type) and any(
            _is_string_type(t) for t in avro_type
        )
    return False


_DATE_LOGICAL = frozenset(
    {
        "date",
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    }
)


def _is_date_type(avro_type: Any) -> bool:
    non_null = [t for t in _branches(avro_type) if t != "null"]
    if len(non_null) != 1:
        return False
    t = non_null[0]
    if isinstance(t, dict) and t.get("logicalType") in _DATE_LOGICAL:
        return True
    return _is_string_type(t)


def _is_nullable(avro_type: Any) -> bool:
    return "null" in _branches(avro_type)


def _null(value: Any) -> Any:
    return None


def _field_masker(name: str, mask: Mask, avro_type: Any, key: bytes | None) -> Callable[[Any], Any]:
    kind = mask_kind(mask)
    if kind in DATE_KINDS:
        if not _is_date_type(avro_type):
            raise ViewError(
                f"field {name!r} is not a date, timestamp or string; cannot mask as {kind}"
            )
        return masker(mask)
    if kind is MaskKind.REDACT and not _is_string_type(avro_type):
        if _is_nullable(avro_type):
            return _null  # a redacted nullable number or date is null: the type stays valid
        raise ViewError(f"field {name!r} is not a string and not nullable; it cannot be redacted")
    if kind in STRING_KINDS or kind is MaskKind.REDACT:
        if not _is_string_type(avro_type):
            raise ViewError(f"field {name!r} is not a string and cannot be masked as {kind}")
        if kind is MaskKind.PSEUDONYM and not key:
            raise ViewError(f"field {name!r}: a pseudonym needs the recipient's pseudonym key")
        try:
            return masker(mask, key or b"")
        except ValueError as exc:
            raise ViewError(f"field {name!r}: {exc}") from None
    raise ViewError(f"field {name!r}: unknown mask {kind!r}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class CompiledView:
    view: View
    schema_json: str
    apply: Callable[[Mapping[str, Any]], dict[str, Any]]
    accepts: RecordTest
    """The row filter on the decoded source record: ``False`` means not for this view."""
    reshapes: bool
    """``False`` when ``apply`` returns the record unchanged (a filter-only view): the
    source bytes can be passed through for the records it accepts."""


def compile_view(view: View, writer_schema_json: str) -> CompiledView:
    """Build the view schema, the row filter and the record transform for one writer schema."""
    writer = orjson.loads(writer_schema_json)
    fields_by_name = {f["name"]: f for f in writer.get("fields", [])}
    keep = list(fields_by_name) if view.fields is None else list(view.fields)
    unknown = [name for name in keep if name not in fields_by_name]
    if unknown:
        raise ViewError(f"view names fields the schema does not have: {unknown}")
    keep_set = set(keep)
    ordered = [name for name in fields_by_name if name in keep_set]
    masks: dict[str, Callable[[Any], Any]] = {}
    for name, mask in view.masking:
        if name not in fields_by_name:
            raise ViewError(f"masking names field {name!r} that the schema does not have")
        if name not in keep_set:
            continue
        masks[name] = _field_masker(name, mask, fields_by_name[name]["type"], view.pseudonym_key)
    try:
        accepts = compile_predicates(view.filters, fields_by_name)
    except PredicateError as exc:
        raise ViewError(str(exc)) from None

    reshapes = view.fields is not None or bool(masks)
    view_schema = dict(writer)
    view_schema["fields"] = [fields_by_name[name] for name in ordered]
    if reshapes:
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

    return CompiledView(view, schema_json, apply, accepts, reshapes)
