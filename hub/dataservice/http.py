"""The data-service REST API (aiohttp), its OpenAPI document and per-call bookkeeping.

Every call: authenticate (bearer token; verified tokens are cached per process by their
SHA-256, so only a first call pays the scrypt hash), resolve the caller's service
subscription into a :class:`~hub.dataservice.access.Grant`, apply rate limit and quota,
read the local view, shape each row with the subscription's compiled view, answer, and
write one audit event and the metrics — also for refused calls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub import metrics
from hub.api.auth import TokenAuthenticator
from hub.api.openapi import (
    ERROR_SCHEMA,
    REF,
    json_body,
    operation,
    path_param,
    query_param,
)
from hub.api.security import AUTHENTICATOR_KEY, require, validation_message
from hub.dataservice.access import AccessBook, AccessDenied, Grant, narrow, verify_claims
from hub.dataservice.audit import AuditSink, call_event
from hub.dataservice.limits import CallLimits
from hub.dataservice.materialise import Materialiser
from hub.dataservice.store import StoredRecord, index_value
from hub.dataservice.usage import UsageTotals
from hub.parties.model import Role
from hub.policy.views import CompiledView, ViewError
from hub.registry.framing import unframe
from hub.registry.schemas import SchemaError, json_default
from hub.state import ControlState

log = logging.getLogger(__name__)

SUBSCRIPTION_HEADER = "Govhub-Subscription"
PURPOSE_HEADER = "Govhub-Purpose"
MAX_KEY_LEN = 256
_MAX_CLAIMS = 50
_JSON = "application/json"


class UnreadableRecord(Exception):
    """A stored source value that does not decode (unknown schema id, bad Avro)."""


# -- request bodies ------------------------------------------------------------------------
class BatchRequest(BaseModel):
    """Body of ``POST /v1/data/{resource}/batch``."""

    model_config = ConfigDict(extra="forbid")
    keys: list[str] = Field(
        min_length=1, description="business keys (统一社会信用代码, 身份证号, ...)"
    )


class VerifyRequest(BaseModel):
    """Body of ``POST /v1/data/{resource}/verify`` (核验)."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=MAX_KEY_LEN, description="the record's business key")
    fields: dict[str, str | int | float | bool] = Field(
        min_length=1,
        max_length=_MAX_CLAIMS,
        description="claimed values by field name; the answer says match / no_match per field",
    )


@dataclass
class CallContext:
    kind: str
    resource: str
    caller: str | None = None
    grant: Grant | None = None
    keys: tuple[str, ...] = ()
    results: int = 0
    outcome: str = "error"
    detail: str | None = None


class CallTally:
    """Calls counted in plain dicts on the hot path; :meth:`flush` hands them to
    Prometheus (each second, and before this node's ``/metrics`` answers)."""

    def __init__(self) -> None:
        self.bounds = metrics.histogram_bounds(
            metrics.DATASERVICE_CALL_SECONDS, metrics.CALL_BUCKETS
        )
        self.calls: dict[tuple[str, str, str], int] = {}
        self.seconds: dict[str, metrics.LatencyCounts] = {}

    def add(self, resource: str, kind: str, outcome: str, seconds: float) -> None:
        key = (resource, kind, outcome)
        self.calls[key] = self.calls.get(key, 0) + 1
        counts = self.seconds.get(kind)
        if counts is None:
            counts = self.seconds[kind] = metrics.LatencyCounts(len(self.bounds))
        counts.buckets[bisect.bisect_left(self.bounds, seconds)] += 1
        counts.total += seconds

    def flush(self) -> None:
        calls, self.calls = self.calls, {}
        seconds, self.seconds = self.seconds, {}
        for labels, count in calls.items():
            metrics.DATASERVICE_CALLS.labels(*labels).inc(count)
        for kind, counts in seconds.items():
            counts.add_to(metrics.DATASERVICE_CALL_SECONDS.labels(kind), self.bounds)


class DataServiceApi:
    """Handlers and the application of one data-service node."""

    def __init__(
        self,
        state: ControlState,
        views: Materialiser,
        book: AccessBook,
        audit: AuditSink,
        *,
        node: str,
        max_batch_keys: int,
        max_page_size: int,
        max_scan_per_page: int,
        daily_quota: int | None,
        default_rate_limit_per_s: int | None,
        readiness: Callable[[], list[str]],
        usage: UsageTotals | None = None,
    ) -> None:
        self._state = state
        self._views = views
        self._book = book
        self._audit = audit
        self.node = node
        self._max_batch = max_batch_keys
        self._max_page = max_page_size
        self._max_scan = max_scan_per_page
        self.limits = (
            CallLimits(daily_quota)
            if usage is None
            else CallLimits(daily_quota, others=usage.others, resume=usage.own)
        )
        self._default_rate = default_rate_limit_per_s
        self._readiness = readiness
        self.tally = CallTally()

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app[AUTHENTICATOR_KEY] = TokenAuthenticator(self._state)
        app.router.add_get("/v1/data/{resource}/records/{key}", self.get_record)
        app.router.add_get("/v1/data/{resource}/records", self.list_records)
        app.router.add_post("/v1/data/{resource}/batch", self.batch)
        app.router.add_post("/v1/data/{resource}/verify", self.verify)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app

    # -- the call frame ------------------------------------------------------------------
    async def _call(
        self,
        request: web.Request,
        kind: str,
        body: Callable[[CallContext], Awaitable[Any]],
    ) -> web.Response:
        started = time.perf_counter()
        match = request.match_info
        ctx = CallContext(kind, match["resource"])
        key = match.get("key")
        if key is not None:
            ctx.keys = (key,)  # audited even when refused
        status = 200
        try:
            who = await require(request, Role.SUBSCRIBER)
            ctx.caller = who.id
            await self._book.synced()  # a changed control state is read off the loop
            headers = request.headers
            ctx.grant = self._book.grant(
                who.party,
                ctx.resource,
                headers.get(SUBSCRIPTION_HEADER),
                _purpose(headers.get(PURPOSE_HEADER)),
                sync=False,
            )
            payload = await body(ctx)
            response = web.Response(
                body=orjson.dumps(payload, default=json_default), content_type=_JSON
            )
        except AccessDenied as exc:
            status, ctx.outcome, ctx.detail = exc.status, _outcome(exc.status, exc.reason), str(exc)
            response = _error(exc.status, str(exc))
        except web.HTTPException as exc:
            status = exc.status
            ctx.outcome = _outcome(status, "")
            ctx.detail = exc.text
            response = web.Response(status=status, body=exc.text, content_type=_JSON)
        except UnreadableRecord as exc:
            status, ctx.outcome, ctx.detail = 500, "error", str(exc)
            response = _error(500, str(exc))
        except Exception as exc:  # answered, counted and audited like any other call
            log.exception("data service call failed", extra={"resource": ctx.resource})
            status, ctx.outcome, ctx.detail = 500, "error", f"internal error: {exc}"
            response = _error(500, "internal error; the hub's log has the details")
        if status == 200 and ctx.outcome == "error":
            ctx.outcome = "ok"
        grant = ctx.grant
        # The path is the caller's: only served resources become label values.
        label = ctx.resource if self._views.view(ctx.resource) is not None else "(unknown)"
        tally = self.tally
        self._audit(
            call_event(
                node=self.node,
                caller=ctx.caller or "(unauthenticated)",
                subscription=None if grant is None else grant.subscription.id,
                resource=ctx.resource,
                call=kind,
                keys=ctx.keys,
                results=ctx.results,
                outcome=ctx.outcome,
                policy_version=None if grant is None else grant.policy_version,
                purpose=None if grant is None else grant.subscription.purpose,
                detail=ctx.detail if status != 200 else None,
            )
        )
        tally.add(label, kind, ctx.outcome, time.perf_counter() - started)
        return response

    def _admit(self, ctx: CallContext, cost: int = 1) -> Grant:
        grant = ctx.grant
        assert grant is not None
        rate = grant.subscription.rate_limit_per_s or self._default_rate
        refused = self.limits.admit(grant.subscription.id, rate, cost)
        if refused == "quota":
            raise AccessDenied(
                429, f"subscription {grant.subscription.id}: daily quota used up", "quota"
            )
        if refused is not None:
            raise AccessDenied(
                429,
                f"subscription {grant.subscription.id}: more than {rate} calls per second",
                "rate-limited",
            )
        return grant

    def _view_of(self, grant: Grant) -> Any:
        view = self._views.view(grant.resource.code)
        if view is None or not view.loaded.is_set():
            raise AccessDenied(
                503,
                f"the view of {grant.resource.code} is not loaded on this node yet",
                "unavailable",
            )
        return view

    def _shape(self, grant: Grant, record: StoredRecord | None) -> dict[str, Any] | None:
        """The caller's row of ``record``, or ``None`` when its policy does not show it
        (outside the jurisdiction, or filtered out by the subscription's predicates)."""
        decoded = self._decoded(grant, record)
        if decoded is None:
            return None
        schema_id, row = decoded
        compiled = self._compiled(grant, schema_id)
        if not compiled.accepts(row):
            return None
        return compiled.apply(row)

    def _compiled(self, grant: Grant, schema_id: int) -> CompiledView:
        try:
            return self._book.compiled(grant, schema_id)
        except (ViewError, SchemaError, LookupError) as exc:
            # e.g. a mask on a field an older writer schema lacks: the policy cannot be
            # applied, so nothing is shown — with the reason.
            raise UnreadableRecord(
                f"the policy of {grant.subscription.id} cannot be applied to schema "
                f"{schema_id}: {exc}"
            ) from None

    def _decoded(
        self, grant: Grant, record: StoredRecord | None
    ) -> tuple[int, dict[str, Any]] | None:
        if record is None or not grant.sees_region(record.region):
            return None
        try:
            schema_id, payload = unframe(record.value)
            return schema_id, self._state.registry.codec(schema_id).decode(payload)
        except Exception as exc:
            metrics.DATASERVICE_RECORDS_SKIPPED.labels(grant.resource.code, "undecodable").inc()
            raise UnreadableRecord(
                f"stored record {record.partition}:{record.offset} of {grant.resource.code} "
                f"cannot be decoded: {exc}"
            ) from None

    # -- handlers ------------------------------------------------------------------------
    async def get_record(self, request: web.Request) -> web.Response:
        async def body(ctx: CallContext) -> Any:
            key = request.match_info["key"]
            ctx.keys = (key,)
            grant = self._admit(ctx)
            row = self._shape(grant, self._view_of(grant).store.get(key))
            if row is None:
                raise AccessDenied(
                    404, f"no record {key!r} in your view of {ctx.resource}", "not-found"
                )
            ctx.results = 1
            return {"resource": ctx.resource, "key": key, "record": row}

        return await self._call(request, "get", body)

    async def batch(self, request: web.Request) -> web.Response:
        async def body(ctx: CallContext) -> Any:
            req = await _read(request, BatchRequest)
            keys = list(dict.fromkeys(req.keys))
            if len(keys) > self._max_batch:
                raise AccessDenied(400, f"keys: at most {self._max_batch} per call", "bad-request")
            if any(len(k) > MAX_KEY_LEN for k in keys):
                raise AccessDenied(
                    400, f"keys: at most {MAX_KEY_LEN} characters each", "bad-request"
                )
            ctx.keys = tuple(keys)
            grant = self._admit(ctx, len(keys))
            stored = self._view_of(grant).store.get_many(keys)
            found: dict[str, Any] = {}
            missing: list[str] = []
            for key, record in zip(keys, stored, strict=True):
                row = self._shape(grant, record)
                if row is None:
                    missing.append(key)
                else:
                    found[key] = row
            ctx.results = len(found)
            return {"resource": ctx.resource, "records": found, "not_found": missing}

        return await self._call(request, "batch", body)

    async def list_records(self, request: web.Request) -> web.Response:
        async def body(ctx: CallContext) -> Any:
            query = request.query
            try:
                limit = int(query.get("limit", str(self._max_page)))
            except ValueError:
                raise AccessDenied(400, "limit must be an integer", "bad-request") from None
            if not 1 <= limit <= self._max_page:
                raise AccessDenied(400, f"limit must be 1..{self._max_page}", "bad-request")
            grant = self._admit(ctx)
            region = query.get("region")
            try:
                prefix = narrow(grant, region)
            except ValueError as exc:
                raise AccessDenied(400, f"region: {exc}", "bad-request") from None
            filters = {k[3:]: v for k, v in query.items() if k.startswith("eq.")}
            view = self._view_of(grant)
            if len(filters) > 1:
                raise AccessDenied(
                    400, "filter on one indexed field per call (eq.<field>)", "bad-request"
                )
            for name in filters:
                if name not in view.store.indexed:
                    indexed = ", ".join(view.store.indexed) or "none"
                    raise AccessDenied(
                        400,
                        f"eq.{name}: not an indexed field of {ctx.resource} ({indexed})",
                        "bad-request",
                    )
                if not grant.may_read_field(name):
                    raise AccessDenied(
                        403, f"eq.{name}: your subscription does not include {name}", "forbidden"
                    )
            cursor = _cursor(query.get("cursor"))
            rows, next_cursor = await asyncio.get_running_loop().run_in_executor(
                None, self._page, grant, view, prefix, filters, cursor, limit
            )
            ctx.results = len(rows)
            ctx.keys = tuple(r[0] for r in rows)
            return {
                "resource": ctx.resource,
                "jurisdiction": prefix,
                "records": [{"key": k, "record": r} for k, r in rows],
                "cursor": next_cursor,
            }

        return await self._call(request, "list", body)

    def _page(
        self,
        grant: Grant,
        view: Any,
        prefix: str,
        filters: dict[str, str],
        cursor: bytes | None,
        limit: int,
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        store = view.store
        if filters:
            ((name, value),) = filters.items()
            entries = store.scan_field(name, value, prefix, cursor)
        else:
            entries = store.scan_region(prefix, cursor)
        rows: list[tuple[str, dict[str, Any]]] = []
        last: bytes | None = None
        exhausted = True
        for examined, (index_key, key) in enumerate(entries, 1):
            last = index_key
            row = self._shape_quietly(grant, store.get(key), filters)
            if row is not None:
                rows.append((key, row))
            if len(rows) >= limit or examined >= self._max_scan:
                exhausted = False
                break
        next_cursor = None if exhausted or last is None else _encode_cursor(last)
        return rows, next_cursor

    def _shape_quietly(
        self, grant: Grant, record: StoredRecord | None, filters: dict[str, str]
    ) -> dict[str, Any] | None:
        try:
            decoded = self._decoded(grant, record)
        except UnreadableRecord:
            return None  # counted; one bad record does not fail the page
        if decoded is None:
            return None
        schema_id, row = decoded
        try:
            compiled = self._compiled(grant, schema_id)
        except UnreadableRecord:
            return None
        if not compiled.accepts(row):
            return None
        for name, value in filters.items():
            # The index held the value when written; the row is re-checked as stored.
            if index_value(row.get(name)) != index_value(value):
                return None
        return compiled.apply(row)

    async def verify(self, request: web.Request) -> web.Response:
        async def body(ctx: CallContext) -> Any:
            key, claims = await _read_verify(request)
            ctx.keys = (key,)
            grant = self._admit(ctx)
            for name in claims:
                if not grant.may_read_field(name):
                    raise AccessDenied(
                        403,
                        f"fields.{name}: your subscription does not include {name}",
                        "forbidden",
                    )
            record = self._view_of(grant).store.get(key)
            decoded = self._decoded(grant, record)
            answers: dict[str, str]
            if decoded is None or not self._compiled(grant, decoded[0]).accepts(decoded[1]):
                answers = {name: "not_found" for name in claims}
                found = False
            else:
                schema_id, row = decoded
                answers = verify_claims(self._book, grant, schema_id, row, claims)
                found = True
            ctx.results = 1 if found else 0
            return {"resource": ctx.resource, "key": key, "found": found, "fields": answers}

        return await self._call(request, "verify", body)

    # -- meta ------------------------------------------------------------------------------
    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(openapi_document()), content_type=_JSON)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=_JSON)

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self._readiness()
        if problems:
            return web.Response(
                status=503,
                body=orjson.dumps({"status": "not ready", "reasons": problems}),
                content_type=_JSON,
            )
        return web.Response(body=b'{"status":"ready"}', content_type=_JSON)

    async def metrics(self, request: web.Request) -> web.Response:
        self.tally.flush()
        body, content_type = metrics.render_latest()
        return web.Response(body=body, headers={"Content-Type": content_type})


def _purpose(raw: str | None) -> str | None:
    """The stated purpose: HTTP headers are Latin-1, so it travels percent-encoded UTF-8
    (``Govhub-Purpose: %E4%BD%8E...``); plain ASCII passes unchanged."""
    return None if raw is None else unquote(raw)


def _outcome(status: int, reason: str) -> str:
    if status == 404:
        return "not-found"
    if status == 401:
        return "unauthenticated"
    if status == 429:
        return reason if reason in ("quota", "rate-limited") else "rate-limited"
    if status == 503:
        return "unavailable"
    if status == 403:
        return "forbidden"
    if status in (400, 413, 415, 422):
        return "bad-request"
    return "error"


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type=_JSON)


_CLAIM_TYPES = frozenset({str, int, float, bool})


async def _read_verify(request: web.Request) -> tuple[str, dict[str, Any]]:
    return verify_body(await _read_json(request))


def verify_body(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, claims) of a verification body. A body of exactly the documented shape is
    taken as it is (the common case, checked here field by field); anything else goes
    through :class:`VerifyRequest`, whose validation gives the error message."""
    if len(data) == 2:
        key = data.get("key")
        claims = data.get("fields")
        if (
            type(key) is str
            and 0 < len(key) <= MAX_KEY_LEN
            and type(claims) is dict
            and 0 < len(claims) <= _MAX_CLAIMS
            and all(type(v) in _CLAIM_TYPES for v in claims.values())
        ):
            return key, claims
    req = _validated(data, VerifyRequest)
    return req.key, req.fields


async def _read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AccessDenied(400, f"body is not valid JSON: {exc}", "bad-request") from None
    if not isinstance(data, dict):
        raise AccessDenied(400, "body must be a JSON object", "bad-request")
    return data


async def _read(request: web.Request, model: type[Any]) -> Any:
    return _validated(await _read_json(request), model)


def _validated(data: dict[str, Any], model: type[Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AccessDenied(
            400, f"invalid request: {validation_message(exc)}", "bad-request"
        ) from None


def _encode_cursor(index_key: bytes) -> str:
    return base64.urlsafe_b64encode(index_key).decode().rstrip("=")


def _cursor(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AccessDenied(
            400, "cursor is malformed; pass the one the last page returned", "bad-request"
        ) from None


# -- OpenAPI -------------------------------------------------------------------------------
_RESOURCE = path_param("resource", r"^[a-z0-9][a-z0-9_-]*$", "catalogue resource code")
_HEADERS = [
    {
        "name": SUBSCRIPTION_HEADER,
        "in": "header",
        "required": False,
        "description": "which of the caller's service subscriptions (needed when it holds several)",
        "schema": {"type": "string", "maxLength": 128},
    },
    {
        "name": PURPOSE_HEADER,
        "in": "header",
        "required": False,
        "description": "the purpose (用途) the caller states, percent-encoded UTF-8; refused "
        "when it differs from the subscription's",
        "schema": {"type": "string"},
    },
]
_CALL_ERRORS = (400, 401, 403, 404, 429, 503)
_ROLES = "subscriber, holding an active service subscription (delivery 'service') on the resource"

OPENAPI_PATHS: dict[str, Any] = {
    "/v1/data/{resource}/records/{key}": {
        "get": operation(
            "One record by its business key, shaped by the caller's subscription policy "
            "(projection, masking, jurisdiction, predicates); 404 when absent or not in the "
            "caller's view",
            "data-service",
            parameters=[
                _RESOURCE,
                path_param("key", r"^.+$", "business key (统一社会信用代码, 身份证号, ...)"),
                *_HEADERS,
            ],
            errors=_CALL_ERRORS,
            roles=_ROLES,
        )
    },
    "/v1/data/{resource}/batch": {
        "post": operation(
            "Several records by key (at most data_service.max_batch_keys); keys not in the "
            "caller's view are listed under not_found",
            "data-service",
            body=json_body(BatchRequest),
            parameters=[_RESOURCE, *_HEADERS],
            errors=_CALL_ERRORS,
            roles=_ROLES,
        )
    },
    "/v1/data/{resource}/records": {
        "get": operation(
            "Records within the caller's jurisdiction (or a region inside it), optionally "
            "where one indexed field equals a value, a page at a time",
            "data-service",
            parameters=[
                _RESOURCE,
                query_param(
                    "region",
                    {"type": "string", "pattern": "^[0-9]{12}$"},
                    "a region inside the jurisdiction",
                ),
                query_param("eq.{field}", {"type": "string"}, "equality on an indexed field"),
                query_param("limit", {"type": "integer", "minimum": 1}, "rows per page"),
                query_param("cursor", {"type": "string"}, "the cursor of the previous page"),
                *_HEADERS,
            ],
            errors=_CALL_ERRORS,
            roles=_ROLES,
        )
    },
    "/v1/data/{resource}/verify": {
        "post": operation(
            "Verification (核验): per claimed field match / no_match, or not_found — never "
            "the stored values",
            "data-service",
            body=json_body(VerifyRequest),
            parameters=[_RESOURCE, *_HEADERS],
            errors=_CALL_ERRORS,
            roles=_ROLES,
        )
    },
    "/healthz": {"get": operation("Liveness", "meta", errors=(), public=True)},
    "/readyz": {
        "get": operation(
            "Readiness (503 with reasons while views load)", "meta", errors=(), public=True
        )
    },
}


def openapi_document() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    from hub import __version__

    _, generated = models_json_schema(
        [(BatchRequest, "validation"), (VerifyRequest, "validation")], ref_template=REF
    )
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, **generated.get("$defs", {})}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GovHub data service",
            "version": __version__,
            "description": "Record by key, batch lookup, filtered listing and verification "
            "(核验) under the caller's subscription policy (数据服务).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(OPENAPI_PATHS.items())),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(schemas.items())),
        },
    }
