"""What makes two schemas the same schema, and the id that follows from it.

A schema is validated by both Avro libraries the hub uses (``avro`` decides compatibility,
``fastavro`` encodes and decodes) and normalised to one JSON text: the ``avro`` library's
resolved form (full names, no whitespace) with object keys in a fixed order. Unlike the Parsing
Canonical Form it keeps defaults, logical types, docs and custom properties, because those
change what a reader does; two texts that differ only in layout or key order are one schema.

The id is 31 bits of SHA-256 of the normalised text: every replica derives the same id for the
same schema without asking anyone.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
import fastavro
import orjson

from hub.registry.errors import InvalidSchema

# Keys in the order people read them; any others follow, sorted.
_KEY_ORDER = (
    "type",
    "name",
    "namespace",
    "doc",
    "aliases",
    "fields",
    "symbols",
    "items",
    "values",
    "size",
    "default",
    "order",
    "logicalType",
    "precision",
    "scale",
)
_RANK = {key: i for i, key in enumerate(_KEY_ORDER)}
_FIELD_RANK = {key: i for i, key in enumerate(("name", "type", "doc", "default", "order"))}


@dataclass(frozen=True, slots=True)
class SchemaIdentity:
    schema_id: int
    form: str  # the normalised schema text, stored and served


def schema_id_of(form: str) -> int:
    digest = hashlib.sha256(form.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1


def _ordered(node: Any, rank: dict[str, int] = _RANK) -> Any:
    if isinstance(node, dict):
        keys = sorted(node, key=lambda k: (rank.get(k, len(rank)), k))
        return {
            k: [_ordered(f, _FIELD_RANK) for f in node[k]]
            if k == "fields" and isinstance(node[k], list)
            else _ordered(node[k])
            for k in keys
        }
    if isinstance(node, list):
        return [_ordered(item) for item in node]
    return node


def parse_avro(text: str) -> avro.schema.Schema:
    """The ``avro`` library's schema object (used for compatibility decisions)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ignored logical types are legal Avro
            return avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchema(f"Invalid schema: {exc}") from None


# Clients send the same schema text again and again (every serializer start): remember the
# answer for texts of ordinary size, so a cache of 4096 entries stays small.
_CACHED_TEXT_LIMIT = 64 * 1024


def identify(text: str) -> SchemaIdentity:
    """Validate ``text`` as an Avro schema and return its normalised form and id."""
    return _identify_cached(text) if len(text) <= _CACHED_TEXT_LIMIT else _identify(text)


@functools.lru_cache(maxsize=4096)
def _identify_cached(text: str) -> SchemaIdentity:
    return _identify(text)


def _identify(text: str) -> SchemaIdentity:
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidSchema(f"Invalid schema: not JSON ({exc})") from None
    if not isinstance(raw, dict | list | str):
        raise InvalidSchema("Invalid schema: expected a JSON object, array or type name")
    parsed = parse_avro(text)
    try:
        fastavro.parse_schema(raw, _write_hint=False)
    except Exception as exc:  # fastavro raises several unrelated exception types
        raise InvalidSchema(f"Invalid schema: {exc}") from None
    form = orjson.dumps(_ordered(parsed.to_json())).decode()
    return SchemaIdentity(schema_id_of(form), form)
