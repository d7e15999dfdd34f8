"""Catalogue (数据目录) endpoints: register, list and search, show, deprecate.

Reading needs any authenticated party; registering and deprecating need the publisher
role for the party's own department (or the system admin for any). Every refusal is a
4xx with ``{"error": ..., "problems": [...]}``; Kafka trouble is a 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from aiohttp import web

from hub import kafka
from hub.api.context import STATE_KEY, in_thread, json_response
from hub.api.security import Principal, require
from hub.catalogue.metrics import CATALOG_DEPRECATIONS, CATALOG_REGISTRATIONS, ResourceGauge
from hub.catalogue.model import (
    Classification,
    OpenAttribute,
    PersonalTag,
    Resource,
    ResourceStatus,
    ShareAttribute,
    parse_term,
)
from hub.catalogue.search import Filters, Hit
from hub.catalogue.sharing import required_approvals, subscribable
from hub.catalogue.store import CatalogueError, CatalogueStore, TopicProvisioner
from hub.parties.model import Role
from hub.state import ControlState
from hub.topics import ensure_resource_topics

log = logging.getLogger(__name__)

STORE_KEY: web.AppKey[CatalogueStore] = web.AppKey("catalogue_store", CatalogueStore)
BASE = "/v1/catalog/resources"
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class _Caller:
    principal: Principal

    @property
    def id(self) -> str:
        return self.principal.id

    def may_manage(self, department: str) -> bool:
        return self.principal.has(Role.SYSTEM_ADMIN) or self.principal.owns_department(department)


def _error(status: int, message: str, problems: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    return json_response(body, status)


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _error(400, f"body must be JSON: {exc}")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    return body


# -- presentation -------------------------------------------------------------------------
def brief(resource: Resource) -> dict[str, Any]:
    """The list/search view of a resource."""
    return {
        "code": resource.code,
        "name": resource.name,
        "department": resource.department,
        "department_name": resource.department_name,
        "summary": resource.summary,
        "classification": resource.classification.value,
        "share": resource.share.value,
        "open_attribute": resource.open_attribute.value,
        "update_cycle": resource.update_cycle.value,
        "status": resource.status.value,
        "personal_tags": sorted({t.value for t in resource.personal_fields().values()}),
        "field_count": len(resource.fields),
    }


def detail(store: CatalogueStore, state: ControlState, resource: Resource) -> dict[str, Any]:
    """The full entry with its schema, topic and the sharing rules that follow from it."""
    allowed, why = subscribable(resource)
    schema = store.schema_version(resource)
    return {
        **resource.model_dump(mode="json"),
        "subject": resource.subject,
        "topic": state.topics.source(resource.department, resource.code),
        "schema": None if schema is None else {"id": schema[0], "version": schema[1]},
        "subscribable": allowed,
        "not_subscribable_reason": why or None,
        "required_approvals": sorted(required_approvals(resource)) if allowed else None,
    }


# -- handlers -----------------------------------------------------------------------------
async def register_resource(request: web.Request) -> web.Response:
    who = await require(request, Role.PUBLISHER, Role.SYSTEM_ADMIN)
    body = await _json_object(request)
    if isinstance(body, web.Response):
        CATALOG_REGISTRATIONS.labels("bad-request").inc()
        return body
    schema, entry = body.get("schema"), body.get("resource")
    if isinstance(schema, dict):
        schema = orjson.dumps(schema).decode()
    if not isinstance(schema, str) or not isinstance(entry, dict):
        CATALOG_REGISTRATIONS.labels("bad-request").inc()
        return _error(
            400, "body must be {'schema': Avro schema (JSON or string), 'resource': {...}}"
        )
    store = request.app[STORE_KEY]
    try:
        done = await in_thread(store.register, entry, schema, _Caller(who))
    except CatalogueError as exc:
        CATALOG_REGISTRATIONS.labels(f"refused-{exc.status}").inc()
        return _error(exc.status, str(exc), exc.problems)
    CATALOG_REGISTRATIONS.labels("created" if done.created else "updated").inc()
    log.info(
        "catalogue resource registered",
        extra={"resource": done.resource.code, "party": who.id, "schema_id": done.schema_id},
    )
    state = request.app[STATE_KEY]
    return json_response(
        {**detail(store, state, done.resource), "created": done.created},
        201 if done.created else 200,
    )


E = TypeVar("E", bound=StrEnum)


def _term(query: Mapping[str, str], name: str, kind: type[E]) -> E | None:
    text = query.get(name)
    return None if text is None or not text.strip() else parse_term(kind, text)


def query_filters(query: Mapping[str, str]) -> Filters:
    """The exact filters of a list/search query (ValueError for an unknown term)."""
    return Filters(
        department=query.get("department") or None,
        tag=_term(query, "tag", PersonalTag),
        classification=_term(query, "classification", Classification),
        share=_term(query, "share", ShareAttribute),
        open_attribute=_term(query, "open", OpenAttribute),
        status=_term(query, "status", ResourceStatus),
    )


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    try:
        limit, offset = int(query.get("limit", "100")), int(query.get("offset", "0"))
    except ValueError:
        raise ValueError("limit and offset must be integers") from None
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise ValueError(f"limit must be 1..{MAX_LIMIT} and offset at least 0")
    return limit, offset


async def list_resources(request: web.Request) -> web.Response:
    await require(request)
    query = request.query
    try:
        filters, (limit, offset) = query_filters(query), _page(query)
    except ValueError as exc:
        return _error(400, str(exc))
    text = query.get("q", "")
    if len(text) > 200:
        return _error(400, "q is limited to 200 characters")
    index = await in_thread(request.app[STORE_KEY].index)
    hits: list[Hit] = index.find(filters, text)
    items = []
    for hit in hits[offset : offset + limit]:
        item = brief(hit.resource)
        if text.strip():
            item["score"] = hit.score
        items.append(item)
    return json_response({"total": len(hits), "offset": offset, "limit": limit, "items": items})


async def show_resource(request: web.Request) -> web.Response:
    await require(request)
    store = request.app[STORE_KEY]
    try:
        resource = store.get(request.match_info["code"])
    except CatalogueError as exc:
        return _error(exc.status, str(exc))
    return json_response(detail(store, request.app[STATE_KEY], resource))


async def deprecate_resource(request: web.Request) -> web.Response:
    who = await require(request, Role.PUBLISHER, Role.SYSTEM_ADMIN)
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    reason = body.get("reason")
    if not isinstance(reason, str):
        return _error(400, "body must be {'reason': '...'}")
    store = request.app[STORE_KEY]
    try:
        resource = await in_thread(
            store.deprecate, request.match_info["code"], reason, _Caller(who)
        )
    except CatalogueError as exc:
        return _error(exc.status, str(exc), exc.problems)
    CATALOG_DEPRECATIONS.inc()
    log.info("catalogue resource deprecated", extra={"resource": resource.code, "party": who.id})
    return json_response(detail(store, request.app[STATE_KEY], resource))


# -- wiring -------------------------------------------------------------------------------
def kafka_topic_provisioner(state: ControlState) -> TopicProvisioner:
    """Creates a resource's topics with the cluster settings the control state uses."""
    bootstrap = state.config.kafka.bootstrap_servers
    client_config = state.config.kafka.client_config

    def provision(department: str, code: str) -> None:
        admin = kafka.admin_client(bootstrap, client_config)
        # ensure_resource_topics waits for the create futures while `admin` is alive.
        ensure_resource_topics(admin, state.topics, department, code)

    return provision


def setup_routes(
    app: web.Application, provision_topics: Callable[[str, str], None] | None = None
) -> None:
    """Add this area's routes to the api application (after its control state is set)."""
    state = app[STATE_KEY]
    app[STORE_KEY] = CatalogueStore(state, provision_topics or kafka_topic_provisioner(state))
    gauge = ResourceGauge()
    state.catalogue.add_listener(gauge.observe)
    gauge.seed(state.catalogue.items())
    app.router.add_post(BASE, register_resource)
    app.router.add_get(BASE, list_resources)
    app.router.add_get(BASE + "/{code}", show_resource)
    app.router.add_post(BASE + "/{code}/deprecate", deprecate_resource)


# -- OpenAPI ------------------------------------------------------------------------------
_ERROR_BODY = {"$ref": "#/components/schemas/CatalogueError"}


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = schema or _ERROR_BODY
    return {"description": description, "content": {"application/json": {"schema": body}}}


_ERRORS = {
    "400": _response("malformed request"),
    "401": _response("missing or unknown token"),
    "403": _response("the party may not do this"),
}
_CODE = {"type": "string"}
_ENTRY = {"$ref": "#/components/schemas/Resource"}
_DETAIL = {
    "allOf": [
        _ENTRY,
        {
            "type": "object",
            "description": "the entry with its subject, topic, schema and sharing rules",
            "properties": {
                "subject": {"type": "string"},
                "topic": {"type": "string"},
                "schema": {
                    "type": ["object", "null"],
                    "properties": {"id": {"type": "integer"}, "version": {"type": "integer"}},
                },
                "subscribable": {"type": "boolean"},
                "not_subscribable_reason": {"type": ["string", "null"]},
                "required_approvals": {
                    "type": ["array", "null"],
                    "items": {"type": "string", "enum": ["owner", "security_admin"]},
                },
            },
        },
    ]
}


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


OPENAPI_PATHS: dict[str, Any] = {
    BASE: {
        "post": {
            "tags": ["catalogue"],
            "summary": "Register or update a resource from an Avro schema and its metadata",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["schema", "resource"],
                            "properties": {
                                "schema": {
                                    "description": "Avro record schema (object or JSON text)"
                                },
                                "resource": _ENTRY,
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _response("registered", _DETAIL),
                "200": _response("updated or unchanged", _DETAIL),
                **_ERRORS,
                "409": _response("code of another department, deprecated, or schema refused"),
                "422": _response("entry invalid or does not match the schema"),
                "503": _response("Kafka unavailable"),
            },
        },
        "get": {
            "tags": ["catalogue"],
            "summary": "List and search resources (Chinese full text in q)",
            "parameters": [
                _param("q", "full-text query over names, titles, summaries, descriptions"),
                _param("department", "provider department code"),
                _param("tag", "personal-data tag, e.g. id_card or 身份证号"),
                _param("classification", "general|important|core or 一般/重要/核心"),
                _param("share", "unconditional|conditional|not_shared or 无条件共享/..."),
                _param("open", "open|conditional|not_open"),
                _param("status", "active|deprecated (default: both)"),
                _param("limit", "page size, 1..1000 (100)", {"type": "integer"}),
                _param("offset", "first item (0)", {"type": "integer"}),
            ],
            "responses": {
                "200": _response(
                    "matching resources, best first when q is given",
                    {
                        "type": "object",
                        "properties": {
                            "total": {"type": "integer"},
                            "offset": {"type": "integer"},
                            "limit": {"type": "integer"},
                            "items": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                ),
                **_ERRORS,
            },
        },
    },
    BASE + "/{code}": {
        "get": {
            "tags": ["catalogue"],
            "summary": "Show a resource",
            "parameters": [{"name": "code", "in": "path", "required": True, "schema": _CODE}],
            "responses": {
                "200": _response("the entry", _DETAIL),
                **_ERRORS,
                "404": _response("no such resource"),
            },
        }
    },
    BASE + "/{code}/deprecate": {
        "post": {
            "tags": ["catalogue"],
            "summary": "Deprecate a resource (no new subscriptions)",
            "parameters": [{"name": "code", "in": "path", "required": True, "schema": _CODE}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["reason"],
                            "properties": {"reason": {"type": "string", "maxLength": 500}},
                        }
                    }
                },
            },
            "responses": {
                "200": _response("deprecated", _DETAIL),
                **_ERRORS,
                "404": _response("no such resource"),
                "409": _response("already deprecated"),
                "422": _response("reason missing or too long"),
            },
        }
    },
}

# Components for hub/api/openapi.py: the entry model and the error body.
OPENAPI_MODELS = (Resource,)
OPENAPI_SCHEMAS: dict[str, Any] = {
    "CatalogueError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "problems": {"type": "array", "items": {"type": "string"}},
        },
    }
}
