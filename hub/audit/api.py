"""The audit in the ``api`` role: control-change events, failed sign-ins and the auditor's
endpoints (``/v1/audit/*``, role ``auditor`` only — 三员 separation).

Control changes are audited by one middleware rather than in each handler: every
successful write (POST, PUT, PATCH, DELETE answered 2xx) and every refused one (401, 403)
becomes an event naming the caller, the action (from the route, e.g.
``subscription.revoke``), its target, and the resource, subscription and recipient
involved — so a route added later is audited without anyone remembering to. A failed
sign-in on any route is an event too; the token is never kept, only the party it claims.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from hub.api.context import STATE_KEY, in_thread, json_response
from hub.api.openapi import operation, path_param, query_param
from hub.api.security import json_error, peek_principal, require
from hub.audit.events import AuditWriter, claimed_party, control_event
from hub.audit.query import AuditIndex, Query, csv_text
from hub.audit.signing import SigningKeyMissing, published_public_key
from hub.audit.store import read_log
from hub.audit.verify import verify_log
from hub.parties.model import Role
from hub.policy.masking import MaskKind

log = logging.getLogger(__name__)

WRITER_KEY: web.AppKey[AuditWriter] = web.AppKey("audit-writer", AuditWriter)
INDEX_KEY: web.AppKey[AuditIndex] = web.AppKey("audit-index", AuditIndex)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_CONTROL = ("/v1/audit/",)
# Key release hands out a key, it changes nothing (counted by govhub_api_key_releases_total);
# a refused release is audited.
_READS = frozenset({("POST", "/v1/keys/release")})
# Route → action names for the control tables; any other write is named from its route.
_ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/v1/parties"): "party.create",
    ("PATCH", "/v1/parties/{id}"): "party.update",
    ("POST", "/v1/parties/{id}/token"): "party.token-rotate",
    ("POST", "/v1/parties/{id}/keys"): "party.public-key-add",
    ("PUT", "/v1/parties/{id}/roles"): "party.roles-set",
    ("POST", "/v1/parties/{id}/suspend"): "party.suspend",
    ("POST", "/v1/parties/{id}/resume"): "party.resume",
    ("POST", "/v1/parties/{id}/data-keys/delete"): "key.delete",
    ("POST", "/v1/keys/release"): "key.release",
    ("POST", "/v1/catalog/resources"): "catalogue.register",
    ("POST", "/v1/catalog/resources/{code}/deprecate"): "catalogue.deprecate",
    ("POST", "/v1/subscriptions"): "subscription.request",
    ("POST", "/v1/subscriptions/{id}/approve"): "subscription.approve",
    ("POST", "/v1/subscriptions/{id}/reject"): "subscription.reject",
    ("POST", "/v1/subscriptions/{id}/revoke"): "subscription.revoke",
    ("POST", "/v1/subscriptions/{id}/suspend"): "subscription.suspend",
    ("POST", "/v1/subscriptions/{id}/resume"): "subscription.resume",
}
_ROUTE_WORD = re.compile(r"[^a-z0-9]+")


def action_name(method: str, canonical: str) -> str:
    known = _ACTIONS.get((method, canonical))
    if known is not None:
        return known
    words = _ROUTE_WORD.sub(".", canonical.lower().removeprefix("/v1/")).strip(".")
    return f"{words}.{method.lower()}"


def _writer(app: web.Application) -> AuditWriter | None:
    return app.get(WRITER_KEY)


# -- control changes and sign-ins ---------------------------------------------------------------
@web.middleware
async def audit_control_changes(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status in (401, 403):
            _audit(request, exc.status)
        raise
    status = response.status
    if status in (401, 403) or (request.method in _MUTATING and 200 <= status < 300):
        _audit(request, status, _created(response))
    return response


def _created(response: web.StreamResponse) -> dict[str, Any]:
    """The created object's id and owner fields from a JSON answer (``POST`` creations name
    their object only there)."""
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes) or not body.startswith(b"{") or len(body) > 1_000_000:
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    wanted = ("id", "code", "resource", "subscriber")
    return {k: str(doc[k]) for k in wanted if isinstance(doc.get(k), str | int)}


def _audit(request: web.Request, status: int, created: dict[str, Any] | None = None) -> None:
    writer = _writer(request.app)
    if writer is None:
        return
    route = request.match_info.route.resource
    canonical = route.canonical if route is not None else request.path
    if canonical.startswith(_NOT_CONTROL) and status != 401:
        return  # auditors' reads are not control changes (failed sign-ins still count)
    if (request.method, canonical) in _READS and status < 300:
        return
    if status == 401:
        claimed = claimed_party(request.headers.get("Authorization"))
        event = control_event(
            claimed or "anonymous",
            "sign-in.failed",
            target=canonical,
            outcome="failed",
            detail={"method": request.method, "remote": request.remote or ""},
        )
    else:
        who = peek_principal(request)
        match = request.match_info
        ids = {k: v for k, v in match.items() if k != "tail"}
        made = created or {}
        on_subscription = canonical.startswith("/v1/subscriptions")
        on_party = canonical.startswith("/v1/parties")
        object_id = ids.get("id") or made.get("id")
        subscription = object_id if on_subscription else None
        recipient = object_id if on_party else made.get("subscriber")
        event = control_event(
            who.id if who is not None else "anonymous",
            action_name(request.method, canonical),
            target="/".join(ids.values()) or object_id or made.get("code") or canonical,
            resource=ids.get("code") or made.get("code") or made.get("resource"),
            subscription=subscription,
            recipient=recipient,
            outcome="ok" if status < 300 else "denied",
            detail={"method": request.method, "path": canonical, "status": status},
        )
    try:
        writer.write(event)
    except Exception:  # the change happened; a missing audit line must be loud, not fatal
        log.exception("audit event could not be written", extra={"action": event["action"]})


# -- auditor endpoints -----------------------------------------------------------------------------
_MAX_PAGE = 1000


def _time_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 15:
        return int(raw)
    try:
        when = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return int(when.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise json_error(
            400, f"{name} must be epoch milliseconds or an ISO 8601 time, got {raw[:40]!r}"
        ) from None


def _int_param(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not 0 <= int(raw) <= high:
        raise json_error(400, f"{name} must be an integer from 0 to {high}")
    return int(raw)


async def _index(request: web.Request) -> AuditIndex:
    index = request.app[INDEX_KEY]
    index.start()
    request[_CAUGHT_UP] = await in_thread(index.catch_up, 10.0)
    return index


def _query(request: web.Request) -> Query:
    q = request.query
    for name in ("recipient", "resource", "record_id"):
        if len(q.get(name, "")) > 1024:
            raise json_error(400, f"{name} is longer than 1024 characters")
    kind = q.get("kind")
    if kind not in (None, "delivery", "control", "call"):
        raise json_error(400, "kind must be delivery, control or call")
    return Query(
        recipient=q.get("recipient") or None,
        resource=q.get("resource") or None,
        record_id=q.get("record_id") or None,
        from_ms=_time_param(request, "from"),
        to_ms=_time_param(request, "to"),
        kind=kind,
    )


_CAUGHT_UP: web.RequestKey[bool] = web.RequestKey("audit-caught-up", bool)


def _coverage(request: web.Request, index: AuditIndex) -> dict[str, Any]:
    """Whether the answer covers the whole trail: ``caught_up`` (every event committed
    before the request was indexed in time) and ``complete`` (no rows dropped by the
    index's bounds, else ``index_from_ms``)."""
    return {
        "caught_up": request.get(_CAUGHT_UP, False),
        "complete": index.evicted_until_ms is None,
        "index_from_ms": index.evicted_until_ms,
        "indexed_rows": len(index),
    }


async def list_events(request: web.Request) -> web.Response:
    await require(request, Role.AUDITOR)
    query = _query(request)
    offset = _int_param(request, "offset", 0, 10**9)
    limit = _int_param(request, "limit", 100, _MAX_PAGE)
    index = await _index(request)
    rows, total = await in_thread(index.search, query, offset, limit)
    with_ids = request.query.get("record_ids") == "true"
    following = offset + len(rows)
    return json_response(
        {
            "events": [r.to_json(with_ids) for r in rows],
            "total": total,
            "offset": offset,
            "next_offset": following if following < total else None,
            **_coverage(request, index),
        }
    )


async def lineage(request: web.Request) -> web.Response:
    await require(request, Role.AUDITOR)
    record_id = request.match_info["record_id"]
    index = await _index(request)
    deliveries = await in_thread(index.lineage, record_id)
    state = request.app[STATE_KEY]
    for delivery in deliveries:
        sub = state.subscription(delivery["subscription"] or "")
        # The view as the subscription states it now (the frame's view schema ids pin
        # the exact shape delivered then).
        delivery["view"] = (
            None
            if sub is None
            else {
                "fields": sub.fields,
                "masking": {
                    k: v.value if isinstance(v, MaskKind) else v.model_dump(mode="json")
                    for k, v in sub.masking.items()
                },
                "filters": [f.model_dump(mode="json") for f in sub.filters],
            }
        )
    return json_response(
        {"record_id": record_id, "deliveries": deliveries, **_coverage(request, index)}
    )


async def export_csv(request: web.Request) -> web.Response:
    await require(request, Role.AUDITOR)
    query = _query(request)
    index = await _index(request)
    rows, _ = await in_thread(index.search, query, 0, index.max_rows)
    text = await in_thread(csv_text, rows)
    return web.Response(
        body=text.encode("utf-8-sig"),  # the BOM lets spreadsheet programs read the 中文
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="govhub-audit.csv"'},
    )


async def verify(request: web.Request) -> web.Response:
    await require(request, Role.AUDITOR)
    state = request.app[STATE_KEY]
    topics = state.topics
    try:
        public = published_public_key(state.keys)
    except SigningKeyMissing as exc:
        raise json_error(409, str(exc)) from None
    config = state.config.kafka
    try:
        audit_log = await in_thread(
            read_log,
            config.bootstrap_servers,
            topics.audit,
            topics.audit_chain,
            config.client_config,
        )
    except (LookupError, TimeoutError, RuntimeError) as exc:
        raise json_error(503, f"audit topics not readable: {exc}") from None
    report = await in_thread(verify_log, audit_log, public)
    return json_response(report.to_json())


# -- wiring ----------------------------------------------------------------------------------------
async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    cfg = state.config.kafka
    writer = AuditWriter(cfg.bootstrap_servers, state.topics, cfg.client_config, role="api")
    app[WRITER_KEY] = writer
    yield
    app[INDEX_KEY].stop()
    await in_thread(writer.close)


def setup(app: web.Application) -> None:
    """Register the auditor routes and the control-change audit (call before startup)."""
    state = app[STATE_KEY]
    cfg = state.config.kafka
    app[INDEX_KEY] = AuditIndex(cfg.bootstrap_servers, state.topics.audit, cfg.client_config)
    app.cleanup_ctx.append(_lifecycle)
    app.middlewares.append(audit_control_changes)
    app.router.add_get("/v1/audit/events", list_events)
    app.router.add_get("/v1/audit/lineage/{record_id}", lineage)
    app.router.add_get("/v1/audit/export.csv", export_csv)
    app.router.add_get("/v1/audit/verify", verify)


_TAG = "audit"
_FILTERS = [
    query_param("recipient", {"type": "string", "maxLength": 1024}, "recipient party id"),
    query_param("resource", {"type": "string", "maxLength": 1024}, "resource code"),
    query_param("record_id", {"type": "string", "maxLength": 1024}, "source record id"),
    query_param("from", {"type": "string"}, "from this time (epoch ms or ISO 8601)"),
    query_param("to", {"type": "string"}, "before this time (epoch ms or ISO 8601)"),
    query_param("kind", {"type": "string", "enum": ["delivery", "control", "call"]}, "event kind"),
]
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/audit/events": {
        "get": operation(
            "Audit events (delivery frames and control changes), filtered and paged",
            _TAG,
            parameters=[
                *_FILTERS,
                query_param("offset", {"type": "integer", "minimum": 0}, "page start"),
                query_param(
                    "limit", {"type": "integer", "minimum": 0, "maximum": _MAX_PAGE}, "page size"
                ),
            ],
            roles="auditor",
            errors=(400, 401, 403),
        )
    },
    "/v1/audit/lineage/{record_id}": {
        "get": operation(
            "Lineage of one record: every recipient it reached, when, under which view",
            _TAG,
            parameters=[path_param("record_id", r"^.+$", "source record id")],
            roles="auditor",
            errors=(401, 403),
        )
    },
    "/v1/audit/export.csv": {
        "get": operation(
            "The matching audit rows as CSV, for inspectors",
            _TAG,
            parameters=_FILTERS,
            roles="auditor",
            errors=(400, 401, 403),
        )
    },
    "/v1/audit/verify": {
        "get": operation(
            "Verify the audit hash chain and its signed checkpoints",
            _TAG,
            roles="auditor",
            errors=(401, 403, 409, 503),
        )
    },
}
