"""Subscription request, approval and revocation endpoints (``/v1/subscriptions``).

Handlers authenticate the caller, parse the body into a typed request, and hand the step
to :mod:`hub.subscriptions.lifecycle`; the blocking part (schema lookup, the write to the
compacted topic and its read-back) runs off the event loop. This module also serves
``/openapi.json`` and runs the sweeper that records time-driven changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from hub.api.context import KMS_KEY, STATE_KEY, in_thread, json_response
from hub.api.openapi import build_document, json_body, operation, path_param, query_param
from hub.api.security import Principal, json_error, read_json, require
from hub.catalogue.model import Resource
from hub.catalogue.sharing import subscribable
from hub.controlstate import ControlStateError
from hub.crypto.kms import Kms
from hub.parties.model import SEPARATED_ROLES, Party, Role
from hub.policy.masking import MaskKind, MaskRule, mask_kind
from hub.policy.predicates import Predicate
from hub.router.routing import effective_masking
from hub.state import ControlState
from hub.subscriptions import lifecycle
from hub.subscriptions import metrics as sub_metrics
from hub.subscriptions.deadlines import WEEKENDS_ONLY, WorkingCalendar
from hub.subscriptions.lifecycle import LifecycleError, approval_roles_of
from hub.subscriptions.model import Policy, Subscription, SubscriptionStatus, now_ms
from hub.subscriptions.pseudonyms import ensure_pseudonym_root
from hub.subscriptions.requests import (
    ApproveRequest,
    ReasonRequest,
    ResumeRequest,
    SubscriptionRequest,
)
from hub.subscriptions.store import catch_up
from hub.subscriptions.sweeper import Sweeper
from hub.subscriptions.validation import check_policy, resource_schema

log = logging.getLogger(__name__)

GRANTED = frozenset({SubscriptionStatus.APPROVED, SubscriptionStatus.ACTIVE})

CALENDAR_KEY: web.AppKey[WorkingCalendar] = web.AppKey("calendar", WorkingCalendar)
_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("subscription-writes", asyncio.Lock)
SWEEP_INTERVAL_S = 0.2
SUB_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SCOPES = ("mine", "to_approve", "owned", "all")


# -- rendering --------------------------------------------------------------------------------
def render(
    sub: Subscription,
    resource: Resource | None,
    party: Party | None,
    at_ms: int,
    history: bool = True,
) -> dict[str, Any]:
    """The subscription as stored, plus what the clock and the defaults make of it."""
    doc = sub.model_dump(mode="json", exclude=None if history else {"history"})
    doc["effective_status"] = sub.effective_status(at_ms).value
    doc["pending_approvals"] = [r.value for r in sub.pending_approvals]
    doc["due_ms"] = sub.due_ms()
    doc["overdue"] = sub.overdue(at_ms)
    if resource is not None and party is not None:
        doc["effective_masking"] = {
            name: mask.model_dump(mode="json") if isinstance(mask, MaskRule) else mask.value
            for name, mask in sorted(effective_masking(resource, sub, party).items())
        }
    return doc


# -- blocking steps (run in a worker thread) --------------------------------------------------
def _render(state: ControlState, sub: Subscription) -> dict[str, Any]:
    return render(sub, state.resource(sub.resource), state.party(sub.subscriber), now_ms())


def _resource(state: ControlState, code: str, status: int = 404) -> Resource:
    resource = state.resource(code)
    if resource is None:
        raise LifecycleError(status, f"no resource {code} in the catalogue")
    return resource


def _commit(
    state: ControlState, kms: Kms, before: Subscription | None, after: Subscription
) -> None:
    current = state.subscription(after.id)
    expected = None if before is None else before.version
    if (None if current is None else current.version) != expected:
        raise LifecycleError(409, f"subscription {after.id} changed meanwhile; read it and retry")
    try:
        if _needs_pseudonyms(state, after):
            # Before the grant: a router compiling it must find the hub's pseudonym secret.
            ensure_pseudonym_root(state.keys, kms)
        state.put_subscription(after)
    except ControlStateError as exc:
        raise LifecycleError(503, f"control state not writable: {exc}") from None


def _needs_pseudonyms(state: ControlState, sub: Subscription) -> bool:
    resource, party = state.resource(sub.resource), state.party(sub.subscriber)
    if resource is None or party is None or sub.status not in GRANTED:
        return False
    masks = effective_masking(resource, sub, party).values()
    return any(mask_kind(m) is MaskKind.PSEUDONYM for m in masks)


def _open(
    state: ControlState,
    kms: Kms,
    calendar: WorkingCalendar,
    requester: Party,
    body: SubscriptionRequest,
) -> Subscription:
    resource = _resource(state, body.resource)
    _catch_up(state)
    allowed, _ = subscribable(resource)
    if allowed:
        check_policy(body.policy, resource, resource_schema(state.registry, resource), requester)
    sub = lifecycle.open_request(
        f"sub-{uuid.uuid4().hex[:16]}",
        body,
        requester,
        resource,
        state.subscription_list(),
        calendar,
        now_ms(),
    )
    _commit(state, kms, None, sub)
    return sub


def _catch_up(state: ControlState) -> None:
    try:
        catch_up(state.subscriptions)
    except ControlStateError as exc:
        raise LifecycleError(503, f"control state not readable: {exc}") from None


Step = Callable[[Subscription, Party, Resource, int], Subscription]


def _decide(state: ControlState, kms: Kms, sub_id: str, actor: Party, step: Step) -> Subscription:
    _catch_up(state)
    sub = state.subscription(sub_id)
    if sub is None:
        raise LifecycleError(404, f"no subscription {sub_id}")
    resource = _resource(state, sub.resource, status=409)
    after = step(sub, actor, resource, now_ms())
    _commit(state, kms, sub, after)
    return after


def _approve_step(state: ControlState, body: ApproveRequest) -> Step:
    def step(sub: Subscription, actor: Party, resource: Resource, at_ms: int) -> Subscription:
        if body.policy is not None:
            subscriber = state.party(sub.subscriber)
            if subscriber is None:
                raise LifecycleError(409, f"subscriber {sub.subscriber} no longer exists")
            check_policy(
                body.policy, resource, resource_schema(state.registry, resource), subscriber
            )
        return lifecycle.approve(
            sub, actor, resource, at_ms, body.policy, body.duration_days, body.starts_at_ms
        )

    return step


# -- the steps, shared by these handlers and the web console (hub/console) -------------------
async def perform(
    app: web.Application, fn: Callable[..., Subscription], *args: Any
) -> Subscription:
    """One subscription write, off the event loop and one at a time per api instance;
    raises :class:`LifecycleError`."""
    async with app[_LOCK_KEY]:
        return await in_thread(fn, *args)


async def _transition(app: web.Application, sub_id: str, actor: Party, step: Step) -> Subscription:
    return await perform(app, _decide, app[STATE_KEY], app[KMS_KEY], sub_id, actor, step)


async def request_subscription(
    app: web.Application, requester: Party, body: SubscriptionRequest
) -> Subscription:
    """Open and check a request (申请); the caller has checked the subscriber role."""
    state, kms, calendar = app[STATE_KEY], app[KMS_KEY], app[CALENDAR_KEY]
    sub = await perform(app, _open, state, kms, calendar, requester, body)
    if sub.status is SubscriptionStatus.REFUSED:
        sub_metrics.SUBSCRIPTIONS_DECISIONS.labels("refused").inc()
    elif sub.status in GRANTED:
        sub_metrics.SUBSCRIPTIONS_DECISIONS.labels("auto_approved").inc()
    return sub


async def approve_request(
    app: web.Application, actor: Party, sub_id: str, body: ApproveRequest
) -> Subscription:
    sub = await _transition(app, sub_id, actor, _approve_step(app[STATE_KEY], body))
    if sub.status in GRANTED:
        sub_metrics.SUBSCRIPTIONS_DECISIONS.labels("approved").inc()
    return sub


async def reject_request(
    app: web.Application, actor: Party, sub_id: str, reason: str
) -> Subscription:
    def step(sub: Subscription, actor: Party, resource: Resource, at_ms: int) -> Subscription:
        return lifecycle.reject(sub, actor, resource, reason, at_ms)

    sub = await _transition(app, sub_id, actor, step)
    sub_metrics.SUBSCRIPTIONS_DECISIONS.labels("rejected").inc()
    return sub


async def revoke_grant(
    app: web.Application, actor: Party, sub_id: str, reason: str
) -> Subscription:
    def step(sub: Subscription, actor: Party, resource: Resource, at_ms: int) -> Subscription:
        return lifecycle.revoke(sub, actor, resource, reason, at_ms)

    sub = await _transition(app, sub_id, actor, step)
    sub_metrics.SUBSCRIPTIONS_REVOCATIONS.labels(
        "subscriber" if sub.subscriber == actor.id else "manager"
    ).inc()
    return sub


def visible(who: Principal, sub: Subscription, resource: Resource | None) -> bool:
    """Whether ``who`` may read ``sub``: its subscriber, the owner department, 三员."""
    if who.id == sub.subscriber or who.has(*SEPARATED_ROLES):
        return True
    return resource is not None and who.owns_department(resource.department)


def select(
    state: ControlState,
    who: Principal,
    scope: str,
    at_ms: int,
    status: str | None = None,
    resource_code: str | None = None,
    overdue: bool | None = None,
) -> list[Subscription]:
    """The subscriptions of ``scope`` (see :data:`SCOPES`) that pass the filters, oldest
    request first; the caller has checked that ``who`` may ask for ``scope``."""
    resources = state.resources()
    found = []
    for sub in state.subscription_list():
        resource = resources.get(sub.resource)
        if scope == "mine" and sub.subscriber != who.id:
            continue
        if scope == "owned" and (resource is None or not who.owns_department(resource.department)):
            continue
        if scope == "to_approve" and (
            resource is None
            or sub.status is not SubscriptionStatus.CHECKED
            or not approval_roles_of(who.party, resource) & set(sub.pending_approvals)
        ):
            continue
        if resource_code is not None and sub.resource != resource_code:
            continue
        if status is not None and sub.effective_status(at_ms).value != status:
            continue
        if overdue is not None and sub.overdue(at_ms) != overdue:
            continue
        found.append(sub)
    found.sort(key=lambda s: (s.requested_at_ms or 0, s.id))
    return found


# -- handlers ---------------------------------------------------------------------------------
async def _run(request: web.Request, step: Awaitable[Subscription]) -> Subscription:
    try:
        return await step
    except LifecycleError as exc:
        raise json_error(exc.status, exc.message) from None


async def create_subscription(request: web.Request) -> web.Response:
    who = await require(request, Role.SUBSCRIBER)
    body = await read_json(request, SubscriptionRequest)
    sub = await _run(request, request_subscription(request.app, who.party, body))
    return json_response(_render(request.app[STATE_KEY], sub), 201)


async def list_subscriptions(request: web.Request) -> web.Response:
    who = await require(request)
    state = request.app[STATE_KEY]
    query = request.query
    scope = query.get("scope", "mine")
    if scope not in SCOPES:
        raise json_error(400, f"scope must be one of {', '.join(SCOPES)}")
    if scope == "all" and not who.has(*SEPARATED_ROLES):
        raise json_error(403, "scope=all is for system admins, security admins and auditors")
    wanted_status = query.get("status")
    if wanted_status is not None and wanted_status not in set(SubscriptionStatus):
        raise json_error(
            400, f"status must be one of {', '.join(s.value for s in SubscriptionStatus)}"
        )
    overdue = query.get("overdue")
    if overdue not in (None, "true", "false"):
        raise json_error(400, "overdue must be true or false")
    at_ms = now_ms()
    resources = state.resources()
    parties = state.party_map()
    found = await in_thread(
        select,
        state,
        who,
        scope,
        at_ms,
        wanted_status,
        query.get("resource"),
        None if overdue is None else overdue == "true",
    )
    return json_response(
        {
            "subscriptions": [
                render(s, resources.get(s.resource), parties.get(s.subscriber), at_ms, False)
                for s in found
            ],
            "count": len(found),
        }
    )


async def show_subscription(request: web.Request) -> web.Response:
    who = await require(request)
    state = request.app[STATE_KEY]
    sub_id = request.match_info["id"]
    sub = state.subscription(sub_id)
    if sub is None:
        raise json_error(404, f"no subscription {sub_id}")
    if not visible(who, sub, state.resource(sub.resource)):
        raise json_error(403, f"subscription {sub_id} is neither yours nor on your resources")
    return json_response(_render(state, sub))


async def approve_subscription(request: web.Request) -> web.Response:
    who = await require(request, Role.APPROVER, Role.SECURITY_ADMIN)
    body = await read_json(request, ApproveRequest, optional=True)
    sub_id = request.match_info["id"]
    sub = await _run(request, approve_request(request.app, who.party, sub_id, body))
    return json_response(_render(request.app[STATE_KEY], sub))


async def reject_subscription(request: web.Request) -> web.Response:
    who = await require(request, Role.APPROVER, Role.SECURITY_ADMIN)
    body = await read_json(request, ReasonRequest)
    sub_id = request.match_info["id"]
    sub = await _run(request, reject_request(request.app, who.party, sub_id, body.reason))
    return json_response(_render(request.app[STATE_KEY], sub))


async def revoke_subscription(request: web.Request) -> web.Response:
    who = await require(request)
    body = await read_json(request, ReasonRequest)
    sub_id = request.match_info["id"]
    sub = await _run(request, revoke_grant(request.app, who.party, sub_id, body.reason))
    return json_response(_render(request.app[STATE_KEY], sub))


async def suspend_subscription(request: web.Request) -> web.Response:
    who = await require(request, Role.APPROVER, Role.SECURITY_ADMIN)
    body = await read_json(request, ReasonRequest)
    state = request.app[STATE_KEY]

    def step(sub: Subscription, actor: Party, resource: Resource, at_ms: int) -> Subscription:
        return lifecycle.suspend(sub, actor, resource, body.reason, at_ms)

    sub = await _run(request, _transition(request.app, request.match_info["id"], who.party, step))
    sub_metrics.SUBSCRIPTIONS_SUSPENSIONS.inc()
    return json_response(_render(state, sub))


async def resume_subscription(request: web.Request) -> web.Response:
    who = await require(request, Role.APPROVER, Role.SECURITY_ADMIN)
    await read_json(request, ResumeRequest, optional=True)
    state = request.app[STATE_KEY]
    sub = await _run(
        request, _transition(request.app, request.match_info["id"], who.party, lifecycle.resume)
    )
    return json_response(_render(state, sub))


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(build_document())


# -- sweeper ----------------------------------------------------------------------------------
async def _sweeping(app: web.Application) -> AsyncIterator[None]:
    from hub.audit.api import WRITER_KEY
    from hub.audit.events import control_event

    def audited(sub: Subscription) -> None:
        writer = app.get(WRITER_KEY)
        if writer is None:
            return
        writer.write(
            control_event(
                "hub",
                f"subscription.{sub.status.value}",
                target=sub.id,
                resource=sub.resource,
                subscription=sub.id,
                recipient=sub.subscriber,
                detail={"by": "clock", "version": sub.version},
                at_ms=sub.history[-1].at_ms if sub.history else None,
            )
        )

    sweeper = Sweeper(app[STATE_KEY], on_change=audited)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                await in_thread(sweeper.tick)
            except Exception:  # the sweeper must outlive a broker hiccup
                log.exception("subscription sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL_S)

    task = asyncio.create_task(loop(), name="subscription-sweeper")
    yield
    stop.set()
    await task


def setup_routes(app: web.Application) -> None:
    """Add this area's routes to the api application."""
    app[_LOCK_KEY] = asyncio.Lock()
    if CALENDAR_KEY not in app:
        app[CALENDAR_KEY] = WEEKENDS_ONLY
    app.router.add_post("/v1/subscriptions", create_subscription)
    app.router.add_get("/v1/subscriptions", list_subscriptions)
    app.router.add_get("/v1/subscriptions/{id}", show_subscription)
    app.router.add_post("/v1/subscriptions/{id}/approve", approve_subscription)
    app.router.add_post("/v1/subscriptions/{id}/reject", reject_subscription)
    app.router.add_post("/v1/subscriptions/{id}/revoke", revoke_subscription)
    app.router.add_post("/v1/subscriptions/{id}/suspend", suspend_subscription)
    app.router.add_post("/v1/subscriptions/{id}/resume", resume_subscription)
    app.router.add_get("/openapi.json", openapi_document)
    app.cleanup_ctx.append(_sweeping)


# -- OpenAPI ----------------------------------------------------------------------------------
_TAG = "subscriptions"
_ID = path_param("id", SUB_ID, "subscription id")
OPENAPI_MODELS = (
    SubscriptionRequest,
    ApproveRequest,
    ReasonRequest,
    ResumeRequest,
    Policy,
    Predicate,
    MaskRule,
)
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/subscriptions": {
        "post": operation(
            "Request a subscription (checked at once: refused, granted or awaiting approval)",
            _TAG,
            ok=201,
            ok_text="the new subscription with its status and history",
            body=json_body(SubscriptionRequest),
            roles="subscriber",
        ),
        "get": operation(
            "List subscriptions",
            _TAG,
            parameters=[
                query_param(
                    "scope",
                    {"type": "string", "enum": list(SCOPES)},
                    "mine (default), to_approve, owned (your department's resources), all (三员)",
                ),
                query_param(
                    "status",
                    {"type": "string", "enum": [s.value for s in SubscriptionStatus]},
                    "effective status",
                ),
                query_param("resource", {"type": "string"}, "resource code"),
                query_param(
                    "overdue", {"type": "string", "enum": ["true", "false"]}, "past deadline"
                ),
            ],
            errors=(400, 401, 403),
        ),
    },
    "/v1/subscriptions/{id}": {
        "get": operation(
            "Show a subscription with its full history",
            _TAG,
            parameters=[_ID],
            errors=(401, 403, 404),
        ),
    },
    "/v1/subscriptions/{id}/approve": {
        "post": operation(
            "Approve (optionally setting the policy and duration)",
            _TAG,
            body=json_body(ApproveRequest, required=False),
            parameters=[_ID],
            roles="approver of the owning department, security admin (核心)",
        ),
    },
    "/v1/subscriptions/{id}/reject": {
        "post": operation(
            "Reject a pending request, with the reason",
            _TAG,
            body=json_body(ReasonRequest),
            parameters=[_ID],
            roles="approver of the owning department, security admin (核心)",
        ),
    },
    "/v1/subscriptions/{id}/revoke": {
        "post": operation(
            "Revoke a grant (or withdraw your own request), with the reason",
            _TAG,
            body=json_body(ReasonRequest),
            parameters=[_ID],
            roles="the subscriber, approver of the owning department, security admin",
        ),
    },
    "/v1/subscriptions/{id}/suspend": {
        "post": operation(
            "Suspend a grant, with the reason",
            _TAG,
            body=json_body(ReasonRequest),
            parameters=[_ID],
            roles="approver of the owning department, security admin",
        ),
    },
    "/v1/subscriptions/{id}/resume": {
        "post": operation(
            "Resume a suspended grant",
            _TAG,
            body=json_body(ResumeRequest, required=False),
            parameters=[_ID],
            roles="approver of the owning department, security admin",
        ),
    },
    "/openapi.json": {
        "get": operation("This document", "meta", errors=(), public=True),
    },
}
