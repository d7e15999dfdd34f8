"""Schema registry endpoints, Confluent-compatible, mounted under ``/registry``.

A stock client is pointed at ``http://host:port/registry``. Reads are answered from memory on
the event loop; writes go to the registry log in a worker thread. The routes sit on the api
app itself (no sub-app, no extra middleware: the cached read is the hot path); every handler
answers failures in the Confluent shape, unknown paths and methods included.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from hub.api.context import STATE_KEY, in_thread
from hub.api.security import principal
from hub.parties.model import Role
from hub.registry.errors import Forbidden, RegistryError, SchemaNotFound, Unauthenticated
from hub.registry.store import SchemaRegistry
from hub.registry.wire import (
    CONTENT_TYPE,
    SchemaRequest,
    compatibility_request,
    error,
    flag,
    page,
    read_json,
    respond,
)

log = logging.getLogger(__name__)

BASE_PATH = "/registry"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _registry(request: web.Request) -> SchemaRegistry:
    return request.app[STATE_KEY].registry


def _schema_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise SchemaNotFound(f"Schema {request.match_info['id']} not found") from None


async def _authorize(request: web.Request, write: bool) -> None:
    """Reads need an authenticated party; writes a system admin, or a publisher for the
    source subjects of its own department (``govhub.src.<dept>.*``)."""
    try:
        who = await principal(request)
    except web.HTTPException as exc:
        error_type = Unauthenticated if exc.status == 401 else Forbidden
        raise error_type(_message(exc)) from None
    if not write or who.has(Role.SYSTEM_ADMIN):
        return
    subject = request.match_info.get("subject")
    department = who.party.department or who.party.id
    if (
        subject is not None
        and who.has(Role.PUBLISHER)
        and subject.startswith(f"govhub.src.{department}.")
    ):
        return
    raise Forbidden(
        f"party {who.id} may not change "
        + (f"subject {subject}" if subject else "the global configuration"),
    )


def _message(exc: web.HTTPException) -> str:
    try:
        return str(orjson.loads(exc.text or "{}").get("error") or exc.reason)
    except orjson.JSONDecodeError:
        return exc.reason


def confluent(handler: Handler, write: bool = False) -> Handler:
    """Authorise, then answer every failure as ``{"error_code", "message"}``; bad input
    never becomes a 500."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            await _authorize(request, write)
            return await handler(request)
        except RegistryError as exc:
            return error(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error(exc.status, exc.status, f"HTTP {exc.status} {exc.reason}")
        except Exception:
            log.exception("registry request %s %s failed", request.method, request.path)
            return error(500, 50001, "Internal error in the schema registry")

    return answer


# -- schemas by id -----------------------------------------------------------------------
async def root(request: web.Request) -> web.Response:
    return respond({})


async def schema_types(request: web.Request) -> web.Response:
    return respond(["AVRO"])


async def schema_by_id(request: web.Request) -> web.Response:
    return respond({"schema": _registry(request).schema(_schema_id(request))})


async def raw_schema_by_id(request: web.Request) -> web.Response:
    schema = _registry(request).schema(_schema_id(request))
    return web.Response(body=schema.encode(), content_type=CONTENT_TYPE)


async def schema_versions(request: web.Request) -> web.Response:
    uses = _registry(request).usages(_schema_id(request), flag(request, "deleted"))
    return respond(page([{"subject": s, "version": v} for s, v in uses], request))


async def schema_subjects(request: web.Request) -> web.Response:
    uses = _registry(request).usages(_schema_id(request), flag(request, "deleted"))
    return respond(page(sorted({s for s, _ in uses}), request))


# -- subjects ------------------------------------------------------------------------------
async def list_subjects(request: web.Request) -> web.Response:
    registry = _registry(request)
    only_deleted = flag(request, "deletedOnly") or flag(request, "deleted_only")
    names = registry.subjects(deleted=flag(request, "deleted") or only_deleted)
    if only_deleted:
        live = set(registry.subjects())
        names = [n for n in names if n not in live]
    prefix = request.query.get("subjectPrefix", "")
    return respond(page([n for n in names if n.startswith(prefix)], request))


async def list_versions(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    numbers = _registry(request).version_numbers(subject, flag(request, "deleted"))
    return respond(page(numbers, request))


async def get_version(request: web.Request) -> web.Response:
    sv = _registry(request).version(
        request.match_info["subject"], request.match_info["version"], flag(request, "deleted")
    )
    return respond(
        {"subject": sv.subject, "version": sv.version, "id": sv.schema_id, "schema": sv.schema}
    )


async def get_version_schema(request: web.Request) -> web.Response:
    sv = _registry(request).version(
        request.match_info["subject"], request.match_info["version"], flag(request, "deleted")
    )
    return web.Response(body=sv.schema.encode(), content_type=CONTENT_TYPE)


async def register(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    schema = SchemaRequest.from_json(await read_json(request)).schema
    registry = _registry(request)
    done = registry.registered(subject, schema)
    if done is None:
        done = await in_thread(registry.register_version, subject, schema)
    return respond({"id": done.schema_id})


async def lookup(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    schema = SchemaRequest.from_json(await read_json(request)).schema
    sv = _registry(request).lookup(subject, schema, flag(request, "deleted"))
    return respond(
        {"subject": sv.subject, "id": sv.schema_id, "version": sv.version, "schema": sv.schema}
    )


async def delete_subject(request: web.Request) -> web.Response:
    registry, subject = _registry(request), request.match_info["subject"]
    deleted = await in_thread(registry.delete_subject, subject, flag(request, "permanent"))
    return respond(deleted)


async def delete_version(request: web.Request) -> web.Response:
    registry, subject = _registry(request), request.match_info["subject"]
    version = request.match_info["version"]
    deleted = await in_thread(registry.delete_version, subject, version, flag(request, "permanent"))
    return respond(deleted)


# -- compatibility and configuration -----------------------------------------------------
async def compatibility(request: web.Request) -> web.Response:
    schema = SchemaRequest.from_json(await read_json(request)).schema
    problems = _registry(request).check_compatibility(
        request.match_info["subject"], schema, request.match_info.get("version")
    )
    answer: dict[str, object] = {"is_compatible": not problems}
    if flag(request, "verbose"):
        answer["messages"] = problems
    return respond(answer)


def _config_subject(request: web.Request) -> str | None:
    return request.match_info.get("subject")


async def get_config(request: web.Request) -> web.Response:
    level = _registry(request).get_config(
        _config_subject(request), flag(request, "defaultToGlobal")
    )
    return respond({"compatibilityLevel": level.value})


async def put_config(request: web.Request) -> web.Response:
    level = compatibility_request(await read_json(request))
    done = await in_thread(_registry(request).set_config, _config_subject(request), level)
    return respond({"compatibility": done.value})


async def delete_config(request: web.Request) -> web.Response:
    previous = await in_thread(_registry(request).delete_config, _config_subject(request))
    return respond({"compatibilityLevel": previous.value})


async def not_found(request: web.Request) -> web.Response:
    return error(404, 404, "HTTP 404 Not Found")


async def method_not_allowed(request: web.Request) -> web.Response:
    return error(405, 405, "HTTP 405 Method Not Allowed")


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "", root),
    ("GET", "/", root),
    ("GET", "/schemas/types", schema_types),
    ("GET", "/schemas/ids/{id}", schema_by_id),
    ("GET", "/schemas/ids/{id}/schema", raw_schema_by_id),
    ("GET", "/schemas/ids/{id}/versions", schema_versions),
    ("GET", "/schemas/ids/{id}/subjects", schema_subjects),
    ("GET", "/subjects", list_subjects),
    ("POST", "/subjects/{subject}", lookup),
    ("DELETE", "/subjects/{subject}", delete_subject),
    ("GET", "/subjects/{subject}/versions", list_versions),
    ("POST", "/subjects/{subject}/versions", register),
    ("GET", "/subjects/{subject}/versions/{version}", get_version),
    ("DELETE", "/subjects/{subject}/versions/{version}", delete_version),
    ("GET", "/subjects/{subject}/versions/{version}/schema", get_version_schema),
    ("POST", "/compatibility/subjects/{subject}/versions", compatibility),
    ("POST", "/compatibility/subjects/{subject}/versions/{version}", compatibility),
    ("GET", "/config", get_config),
    ("PUT", "/config", put_config),
    ("DELETE", "/config", delete_config),
    ("GET", "/config/{subject}", get_config),
    ("PUT", "/config/{subject}", put_config),
    ("DELETE", "/config/{subject}", delete_config),
)
METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
WRITES = frozenset({register, delete_subject, delete_version, put_config, delete_config})


def setup_routes(app: web.Application) -> None:
    allowed: dict[str, set[str]] = {}
    for method, path, handler in ROUTES:
        write = handler in WRITES
        app.router.add_route(method, BASE_PATH + path, confluent(handler, write))
        allowed.setdefault(path, set()).add(method)
    for path, methods in allowed.items():
        for method in METHODS - methods:
            app.router.add_route(method, BASE_PATH + path, method_not_allowed)
    app.router.add_route("*", BASE_PATH + "/{tail:.*}", not_found)
    # The path before the base path existed; subscriber SDKs still fetch view schemas there.
    app.router.add_get("/schemas/ids/{id}", confluent(schema_by_id))
