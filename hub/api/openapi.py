"""The OpenAPI 3 document served at ``/openapi.json``.

Each route module exports ``OPENAPI_PATHS`` (path → method → operation) and, for the
request bodies it references as ``#/components/schemas/<Name>``, ``OPENAPI_MODELS``
(pydantic models); raw component schemas may come as ``OPENAPI_SCHEMAS``. The document is
assembled from whatever the modules export, so it cannot drift from the handlers' models.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from hub import __version__

REF = "#/components/schemas/{model}"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_ERROR_TEXT = {
    400: "invalid input; the message names the field",
    401: "missing, unknown or expired token",
    403: "the caller lacks the role, or the object is not theirs",
    404: "no such object",
    409: "conflicts with the current state (duplicate, wrong state, 三员 separation)",
    503: "the control state cannot be written right now",
}


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def json_body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": ref(model)}}}


def path_param(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern, "maxLength": 128},
    }


def query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def operation(
    summary: str,
    tag: str,
    *,
    ok: int = 200,
    ok_text: str = "done",
    body: dict[str, Any] | None = None,
    parameters: Sequence[dict[str, Any]] = (),
    errors: Iterable[int] = (400, 401, 403, 404, 409),
    roles: str | None = None,
    public: bool = False,
) -> dict[str, Any]:
    """One operation object with JSON responses for success and each error status."""
    description = f"Roles: {roles}." if roles else ""
    responses: dict[str, Any] = {
        str(ok): {
            "description": ok_text,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    for status in errors:
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "error"),
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
        }
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": responses,
    }
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op


class KeyReleaseRequest(BaseModel):
    """Body of ``POST /v1/keys/release`` (served by ``hub/api/app.py``)."""

    key_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="data key id, hex")
    subscription: str = Field(min_length=1, max_length=128)


# Endpoints of the api application itself (health, metrics, key release).
APP_PATHS: dict[str, Any] = {
    "/healthz": {"get": operation("Liveness", "meta", errors=(), public=True)},
    "/readyz": {
        "get": operation(
            "Readiness, with the reasons when not ready (503)", "meta", errors=(), public=True
        )
    },
    "/v1/keys/release": {
        "post": operation(
            "Release a data key, sealed (HPKE) to the caller's newest public key, while its "
            "subscription is active",
            "keys",
            body=json_body(KeyReleaseRequest),
            roles="the subscriber of the named subscription",
        )
    },
}


def _route_modules() -> list[ModuleType]:
    from hub.api import (
        catalogue_routes,
        key_routes,
        party_routes,
        registry_routes,
        subscription_routes,
    )
    from hub.audit import api as audit_routes

    return [
        registry_routes,
        catalogue_routes,
        party_routes,
        key_routes,
        subscription_routes,
        audit_routes,
    ]


def build_document(modules: Sequence[ModuleType] | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {path: dict(methods) for path, methods in APP_PATHS.items()}
    models: list[type[BaseModel]] = [KeyReleaseRequest]
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for module in _route_modules() if modules is None else modules:
        for path, methods in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(methods)
        models.extend(getattr(module, "OPENAPI_MODELS", ()))
        schemas.update(getattr(module, "OPENAPI_SCHEMAS", {}))
    unique = list(dict.fromkeys(models))
    if unique:
        _, generated = models_json_schema([(m, "validation") for m in unique], ref_template=REF)
        schemas.update(generated.get("$defs", {}))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GovHub api",
            "version": __version__,
            "description": "Control plane of the GovHub data sharing hub (政务数据共享交换枢纽).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(schemas.items())),
        },
    }
