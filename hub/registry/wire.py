"""The Confluent REST wire format: content types, request bodies, query flags, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import hdrs, web

from hub.registry.compatibility import Compatibility
from hub.registry.errors import (
    InvalidCompatibilityLevel,
    InvalidSchema,
    MalformedRequest,
    OperationNotPermitted,
    PayloadTooLarge,
    UnsupportedMediaType,
)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_CONTENT_TYPES = frozenset(
    {CONTENT_TYPE, "application/vnd.schemaregistry+json", "application/json"}
)
# A schema travels in one Kafka record of the registry log (the broker's default limit is 1 MiB).
MAX_BODY_BYTES = 512 * 1024


def respond(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=CONTENT_TYPE)


def error(status: int, code: int, message: str) -> web.Response:
    """An error in the Confluent shape, so stock clients report it properly."""
    return respond({"error_code": code, "message": message}, status)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, after the content type and size checks."""
    declared = request.headers.get(hdrs.CONTENT_TYPE)
    if declared is not None:
        media = declared.split(";", 1)[0].strip().lower()
        if media not in ACCEPTED_CONTENT_TYPES:
            raise UnsupportedMediaType(
                f"HTTP 415 Unsupported Media Type: send {CONTENT_TYPE} or application/json"
            )
    too_large = PayloadTooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"Malformed JSON: {exc}") from None


def flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter (clients send ``true``, ``True`` or ``false``)."""
    return request.query.get(name, "").lower() == "true"


def page(items: list[Any], request: web.Request) -> list[Any]:
    """``offset`` / ``limit`` paging of a listing (``limit`` < 0: everything)."""
    try:
        offset = max(int(request.query.get("offset", "0")), 0)
        limit = int(request.query.get("limit", "-1"))
    except ValueError:
        raise MalformedRequest("offset and limit must be integers") from None
    return items[offset:] if limit < 0 else items[offset : offset + limit]


@dataclass(frozen=True, slots=True)
class SchemaRequest:
    """The body of register, lookup and compatibility requests."""

    schema: str

    @classmethod
    def from_json(cls, body: Any) -> SchemaRequest:
        if not isinstance(body, dict):
            raise InvalidSchema("Invalid schema: the body must be a JSON object with 'schema'")
        schema_type = body.get("schemaType") or "AVRO"
        if schema_type != "AVRO":
            raise InvalidSchema(
                f"Invalid schema: schemaType {schema_type!r} is not supported (AVRO only)"
            )
        if body.get("references"):
            raise InvalidSchema(
                "Invalid schema: schema references are not supported; "
                "define the referenced types inline"
            )
        for unsupported in ("metadata", "ruleSet"):
            if body.get(unsupported):
                raise InvalidSchema(f"Invalid schema: {unsupported!r} is not supported")
        if body.get("id") is not None or body.get("version") is not None:
            raise OperationNotPermitted(
                "Registering under a given id or version (import mode) is not supported"
            )
        schema = body.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise InvalidSchema("Invalid schema: 'schema' must be the Avro schema as a string")
        return cls(schema)


def compatibility_request(body: Any) -> Compatibility:
    """The level of a ``PUT /config`` body (``compatibility``, or ``compatibilityLevel``)."""
    if not isinstance(body, dict):
        raise InvalidCompatibilityLevel("the body must be a JSON object with 'compatibility'")
    return Compatibility.parse(body.get("compatibility") or body.get("compatibilityLevel"))
