"""Schema registry endpoints (Confluent REST API subset)."""

from __future__ import annotations

import orjson
from aiohttp import web

from hub.api.context import STATE_KEY, in_thread, json_response
from hub.registry.schemas import SchemaError
from hub.registry.store import SchemaNotFound, SubjectNotFound

SR_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def sr_error(status: int, code: int, message: str) -> web.Response:
    """An error in the Confluent shape, so stock clients report it properly."""
    return json_response({"error_code": code, "message": message}, status, SR_CONTENT_TYPE)


async def get_schema_by_id(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        schema_id = int(request.match_info["id"])
        schema = state.registry.schema(schema_id)
    except (ValueError, SchemaNotFound):
        return sr_error(404, 40403, "Schema not found")
    return json_response({"schema": schema}, content_type=SR_CONTENT_TYPE)


async def list_subjects(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].registry.subjects(), content_type=SR_CONTENT_TYPE)


async def list_versions(request: web.Request) -> web.Response:
    versions = request.app[STATE_KEY].registry.versions(request.match_info["subject"])
    if not versions:
        return sr_error(404, 40401, "Subject not found")
    return json_response([v.version for v in versions], content_type=SR_CONTENT_TYPE)


async def get_version(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    try:
        sv = request.app[STATE_KEY].registry.version(subject, request.match_info["version"])
    except SubjectNotFound:
        return sr_error(404, 40402, "Version not found")
    except ValueError:
        return sr_error(422, 42202, "Invalid version")
    return json_response(
        {"subject": sv.subject, "version": sv.version, "id": sv.schema_id, "schema": sv.schema},
        content_type=SR_CONTENT_TYPE,
    )


async def register_version(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    try:
        body = orjson.loads(await request.read())
        schema = body["schema"]
        if body.get("schemaType", "AVRO") != "AVRO":
            return sr_error(422, 42201, "only AVRO schemas are supported")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return sr_error(422, 42201, "body must be JSON with a 'schema' string")
    state = request.app[STATE_KEY]
    try:
        schema_id = await in_thread(state.registry.register, subject, schema)
    except SchemaError as exc:
        return sr_error(422, 42201, f"Invalid schema: {exc}")
    return json_response({"id": schema_id}, content_type=SR_CONTENT_TYPE)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/schemas/ids/{id}", get_schema_by_id)
    app.router.add_get("/subjects", list_subjects)
    app.router.add_get("/subjects/{subject}/versions", list_versions)
    app.router.add_get("/subjects/{subject}/versions/{version}", get_version)
    app.router.add_post("/subjects/{subject}/versions", register_version)
