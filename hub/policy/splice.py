"""Views applied to Avro binary records without decoding them (the native splice).

:func:`compile_splice` turns a :class:`~hub.policy.views.View` and a writer schema into a
:class:`NativeView`: a compiled :class:`hub.policy._splice.Program` that copies, skips or
masks each top-level field of the writer record directly in the Avro bytes. Its output is
byte-identical to the Python path (decode, :attr:`CompiledView.apply`, encode with the view
schema) for records as fastavro writes them.

Not every view is native: pseudonyms, date masks on timestamps or strings, and views with
row filters need the decoded record. For those (and when the extension is not built)
:func:`compile_splice` returns ``None`` and callers keep to the Python path.

The program's op list (see ``hub/policy/_splice.c``) is built here: every type in the writer
schema becomes a node of a flat tuple, named types and recursion become node indices, and
each top-level field gets one op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from hub.policy.masking import Mask, MaskKind, MaskRule, mask_kind
from hub.policy.views import CompiledView, View, _is_string_type, compile_view

try:
    from hub.policy import _splice
except ImportError:  # the extension is optional (see setup.py)
    _splice = None  # type: ignore[assignment]

NATIVE_AVAILABLE = _splice is not None
"""Whether the native extension is built; without it :func:`compile_splice` returns None."""

SpliceError: type[ValueError] = _splice.SpliceError if _splice is not None else ValueError
"""What a native program raises for a payload that does not match its writer schema."""

TypeNode = tuple[Any, ...]
FieldOp = tuple[Any, ...]

# Characters kept at the start and end of a string, per mask kind ("name" keeps the first
# character only, which is keep(1, 0) including strings of 0 and 1 characters).
_KEEP: dict[MaskKind, tuple[int, int]] = {
    MaskKind.ID_CARD: (6, 4),
    MaskKind.NAME: (1, 0),
    MaskKind.PHONE: (3, 4),
    MaskKind.ADDRESS: (6, 0),
    MaskKind.BANK_CARD: (0, 4),
}

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@dataclass(frozen=True, slots=True)
class NativeView:
    """A view compiled for the native splice: ``program(payload)`` returns the view's bytes."""

    program: _splice.Program
    schema_json: str
    """The view schema, identical to :attr:`CompiledView.schema_json`."""
    compiled: CompiledView


class _NotNative(Exception):
    """The view or schema needs the Python path."""


class _Types:
    """Writer schema types as a flat tuple of nodes; a named type is one node."""

    def __init__(self) -> None:
        self.nodes: list[TypeNode | None] = []
        self.named: dict[str, int] = {}
        self.primitive: dict[str, int] = {}

    def _new(self) -> int:
        self.nodes.append(None)
        return len(self.nodes) - 1

    def _name(self, schema: Mapping[str, Any], namespace: str) -> tuple[str, str]:
        """The full name of a named type and the namespace its members resolve in."""
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            raise _NotNative("a named type without a name")
        if "." in name:
            space = name.rsplit(".", 1)[0]
            return name, space
        space = schema.get("namespace", namespace)
        if not isinstance(space, str):
            raise _NotNative("a namespace that is not a string")
        return (f"{space}.{name}" if space else name), space

    def _reference(self, name: str, namespace: str) -> int:
        candidates = [name] if "." in name else [f"{namespace}.{name}", name]
        for full in candidates:
            if full in self.named:
                return self.named[full]
        raise _NotNative(f"unknown type {name!r}")

    def _register(self, full: str) -> int:
        if full in self.named:
            raise _NotNative(f"type {full!r} is defined twice")
        index = self.named[full] = self._new()
        return index

    def add(self, schema: Any, namespace: str = "") -> int:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                index = self.primitive.get(schema)
                if index is None:
                    index = self.primitive[schema] = self._new()
                    self.nodes[index] = (schema,)
                return index
            return self._reference(schema, namespace)
        if isinstance(schema, list):
            index = self._new()
            self.nodes[index] = ("union", tuple(self.add(b, namespace) for b in schema))
            return index
        if not isinstance(schema, dict):
            raise _NotNative(f"unexpected schema element {schema!r}")
        kind = schema.get("type")
        if kind in ("record", "error"):
            full, space = self._name(schema, namespace)
            index = self._register(full)
            fields = schema.get("fields")
            if not isinstance(fields, list):
                raise _NotNative(f"record {full!r} has no field list")
            kids = tuple(self.add(_field_type(f), space) for f in fields)
            self.nodes[index] = ("record", kids)
            return index
        if kind == "enum":
            full, _ = self._name(schema, namespace)
            symbols = schema.get("symbols")
            if not isinstance(symbols, list):
                raise _NotNative(f"enum {full!r} has no symbols")
            index = self._register(full)
            self.nodes[index] = ("enum", len(symbols))
            return index
        if kind == "fixed":
            full, _ = self._name(schema, namespace)
            size = schema.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise _NotNative(f"fixed {full!r} has no valid size")
            index = self._register(full)
            self.nodes[index] = ("fixed", size)
            return index
        if kind == "array":
            index = self._new()
            self.nodes[index] = ("array", self.add(schema.get("items"), namespace))
            return index
        if kind == "map":
            index = self._new()
            self.nodes[index] = ("map", self.add(schema.get("values"), namespace))
            return index
        # A primitive or a reference with attributes ({"type": "int", "logicalType": ...}).
        return self.add(kind, namespace)

    def node(self, index: int) -> TypeNode:
        node = self.nodes[index]
        assert node is not None
        return node

    def frozen(self) -> tuple[TypeNode, ...]:
        return tuple(self.node(i) for i in range(len(self.nodes)))


def _field_type(field: Any) -> Any:
    if not isinstance(field, dict) or "type" not in field:
        raise _NotNative("a record field without a type")
    return field["type"]


def _is_date_int(avro_type: Any) -> bool:
    return (
        isinstance(avro_type, dict)
        and avro_type.get("type") == "int"
        and avro_type.get("logicalType") == "date"
    )


def _is_native_date(avro_type: Any) -> bool:
    """A ``date`` (an ``int`` of days), alone or in a union with null."""
    if isinstance(avro_type, list):
        return (
            len(avro_type) == 2 and "null" in avro_type and any(_is_date_int(t) for t in avro_type)
        )
    return _is_date_int(avro_type)


def _mask_op(name: str, mask: Mask, avro_type: Any, node: int) -> FieldOp:
    """The op for a masked field; compile_view has checked the mask fits the type."""
    kind = mask_kind(mask)
    if kind in (MaskKind.MONTH, MaskKind.YEAR):
        if not _is_native_date(avro_type):
            raise _NotNative(f"field {name!r}: {kind} on a timestamp or string")
        return (kind.value, name, node)
    if kind is MaskKind.REDACT:
        return ("redact" if _is_string_type(avro_type) else "null", name, node)
    if kind is MaskKind.KEEP:
        if not isinstance(mask, MaskRule):  # pragma: no cover - compile_view refuses these
            raise _NotNative(f"field {name!r}: keep without a rule")
        return ("keep", name, node, mask.first, mask.last)
    if kind in _KEEP:
        head, tail = _KEEP[kind]
        return ("keep", name, node, head, tail)
    raise _NotNative(f"field {name!r}: {kind} masks are not native")


def _program_spec(
    view: View, writer: Mapping[str, Any]
) -> tuple[tuple[TypeNode, ...], tuple[FieldOp, ...]]:
    types = _Types()
    top = types.add(dict(writer))
    fields = writer["fields"]
    names = [f["name"] for f in fields]
    if len(set(names)) != len(names):
        raise _NotNative("the writer schema repeats a field name")
    nodes = types.node(top)[1]
    keep = set(names) if view.fields is None else set(view.fields)
    masks = dict(view.masking)  # the last mask of a field wins, as in compile_view
    ops: list[FieldOp] = []
    for field, name, node in zip(fields, names, nodes, strict=True):
        if name not in keep:
            ops.append(("drop", name, node))
        elif name in masks:
            ops.append(_mask_op(name, masks[name], field["type"], node))
        else:
            ops.append(("copy", name, node))
    return types.frozen(), tuple(ops)


def compile_splice(view: View, writer_schema_json: str) -> NativeView | None:
    """The native form of ``view`` on ``writer_schema_json``, or ``None`` when the view
    needs the Python path (or the extension is not built).

    Raises what :func:`~hub.policy.views.compile_view` raises (:class:`ViewError` for a
    view that does not apply to the schema, ``SchemaError`` for a view schema that does not
    parse), for the same views.
    """
    compiled = compile_view(view, writer_schema_json)
    if _splice is None or view.filters:
        return None
    writer = orjson.loads(writer_schema_json)
    if not isinstance(writer, dict) or writer.get("type") not in ("record", "error"):
        return None
    try:
        types, ops = _program_spec(view, writer)
        program = _splice.Program(types, ops)
    except (_NotNative, ValueError, TypeError):
        return None  # a schema shape the program does not take: the Python path handles it
    return NativeView(program, compiled.schema_json, compiled)
