"""The console's pages and actions under ``/console``.

Pages are rendered on the server (Jinja2); the browser needs JavaScript only for the live
page (SSE and the chart) and for search-as-you-type (htmx). Every action calls the same
functions as the REST routes — :mod:`hub.api.subscription_routes` for requests,
approvals and revocations, :mod:`hub.api.catalogue_routes` for the catalogue — so the
rules, the validation and the audit trail are the API's own.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import orjson
from aiohttp import web

from hub.api import subscription_routes as subs
from hub.api.auth import AuthError
from hub.api.catalogue_routes import STORE_KEY, brief, detail, query_filters
from hub.api.context import KMS_KEY, STATE_KEY, in_thread
from hub.api.security import AUTHENTICATOR_KEY, Principal, _certificate_subject
from hub.catalogue.model import Classification, PersonalTag, Resource, ShareAttribute
from hub.catalogue.search import Filters
from hub.console import forms
from hub.console.auditview import AuditQuery, AuditQueryError, AuditView
from hub.console.i18n import FORM_LEVEL, Translator, pick_language
from hub.console.live import LiveFlow
from hub.console.sessions import COOKIE, LANG_COOKIE, Session, SessionBook, SessionError
from hub.gateway.tickets import token_fingerprint
from hub.metrics import CONSOLE_ACTIONS, CONSOLE_LIVE_STREAMS, CONSOLE_SIGNINS
from hub.parties.model import SEPARATED_ROLES, Party, PartyStatus, Role
from hub.policy.masking import MaskKind, MaskRule
from hub.registry.errors import RegistryError
from hub.router.routing import effective_masking
from hub.subscriptions.deadlines import CHINA_TZ
from hub.subscriptions.lifecycle import LifecycleError, approval_roles_of, manages
from hub.subscriptions.model import (
    OPEN_STATES,
    ApprovalRole,
    Subscription,
    SubscriptionStatus,
    now_ms,
)

log = logging.getLogger(__name__)

BASE = "/console"
_HERE = Path(__file__).parent
SESSIONS_KEY: web.AppKey[SessionBook] = web.AppKey("console_sessions", SessionBook)
LIVE_KEY: web.AppKey[LiveFlow] = web.AppKey("console_live", LiveFlow)
AUDIT_KEY: web.AppKey[AuditView] = web.AppKey("console_audit", AuditView)
_TEMPLATES_KEY: web.AppKey[jinja2.Environment] = web.AppKey("console_templates", jinja2.Environment)
SIGNIN_COOKIE = "govhub_signin"
LIVE_PUSH_S = 1.0
MASK_CHOICES = tuple(k.value for k in MaskKind if k is not MaskKind.KEEP)

# Which pages a party may open (三员 separation and department roles).
PAGE_ROLES: dict[str, frozenset[Role] | None] = {
    "catalogue": None,
    "requests": frozenset({Role.SUBSCRIBER}),
    "approvals": frozenset({Role.APPROVER, Role.SECURITY_ADMIN}),
    "subscriptions": None,
    "live": frozenset(
        {Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDITOR, Role.PUBLISHER, Role.APPROVER}
    ),
    "audit": frozenset({Role.AUDITOR}),
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in party of a page, with its language and CSRF token."""

    who: Principal
    session: Session
    csrf: str
    t: Translator

    @property
    def party(self) -> Party:
        return self.who.party

    def may(self, page: str) -> bool:
        roles = PAGE_ROLES[page]
        return roles is None or self.who.has(*roles)

    @property
    def hub_wide(self) -> bool:
        return self.who.has(*SEPARATED_ROLES)


# -- rendering ---------------------------------------------------------------------------------
def _when(ms: int | None, seconds: bool = False) -> str:
    if ms is None:
        return "-"
    at = datetime.datetime.fromtimestamp(ms / 1000, CHINA_TZ)
    return at.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _mask_text(mask: Any) -> str:
    if isinstance(mask, MaskRule):
        return f"{mask.kind.value}:{mask.first}:{mask.last}"
    if isinstance(mask, dict):
        return f"{mask.get('kind')}:{mask.get('first', 0)}:{mask.get('last', 0)}"
    return str(getattr(mask, "value", mask))


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hub.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["mask"] = _mask_text
    return env


def _lang(request: web.Request) -> str:
    return pick_language(
        request.query.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("Accept-Language"),
    )


def _page(
    request: web.Request,
    name: str,
    t: Translator,
    context: dict[str, Any],
    status: int = 200,
    viewer: Viewer | None = None,
) -> web.Response:
    env = request.app[_TEMPLATES_KEY]
    here = request.rel_url.path
    query = {k: v for k, v in request.query.items() if k != "lang"}
    other = "en" if t.lang == "zh" else "zh"
    switch = here + "?" + urllib.parse.urlencode({**query, "lang": other})
    current = here[len(BASE) + 1 :].split("/", 1)[0]
    body = env.get_template(name).render(
        t=t,
        viewer=viewer,
        base=BASE,
        lang=t.lang,
        switch_url=switch,
        current=current,
        **context,
    )
    response = web.Response(text=body, status=status, content_type="text/html")
    _secure(response)
    if request.query.get("lang") in ("zh", "en"):
        response.set_cookie(
            LANG_COOKIE, t.lang, max_age=365 * 86400, path="/", samesite="Strict", httponly=True
        )
    return response


def _secure(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"


def _redirect(location: str) -> web.HTTPSeeOther:
    exc = web.HTTPSeeOther(location)
    _secure(exc)
    return exc


# -- who is looking ----------------------------------------------------------------------------
async def _viewer(request: web.Request, page: str | None = None) -> Viewer:
    """The signed-in party (else a redirect to the sign-in page); 403 page without the role."""
    t = Translator(_lang(request))
    book = request.app[SESSIONS_KEY]
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise _redirect(f"{BASE}/signin?next={urllib.parse.quote(request.rel_url.path)}")
    try:
        session = book.verify(cookie, now_ms())
    except SessionError:
        raise _redirect(f"{BASE}/signin?expired=1") from None
    party = request.app[STATE_KEY].party(session.party_id)
    if (
        party is None
        or party.status is not PartyStatus.ACTIVE
        or party.token_expired(now_ms())
        or (
            party.token_hash is not None
            and token_fingerprint(party.token_hash) != session.fingerprint
        )
    ):
        raise _redirect(f"{BASE}/signin?expired=1")
    viewer = Viewer(Principal(party), session, book.csrf_token(session), t)
    if page is not None and not viewer.may(page):
        roles = PAGE_ROLES[page] or frozenset()
        wanted = "、".join(t.maybe("role", r.value) for r in sorted(roles))
        body = _page(request, "forbidden.html", t, {"wanted": wanted}, 403, viewer)
        forbidden = web.HTTPForbidden(text=body.text, content_type="text/html")
        _secure(forbidden)
        raise forbidden
    return viewer


async def _form(request: web.Request, viewer: Viewer, action: str) -> forms.FormData:
    """The POSTed form, once its CSRF token matched the session."""
    data = await request.post()
    pairs = [(k, v) for k, v in data.items() if isinstance(v, str)]
    form = forms.FormData(pairs)
    if not request.app[SESSIONS_KEY].check_csrf(viewer.session, form.get("csrf")):
        CONSOLE_ACTIONS.labels(action, "csrf").inc()
        raise web.HTTPForbidden(text=viewer.t("csrf.failed"), content_type="text/plain")
    return form


# -- sign-in -----------------------------------------------------------------------------------
async def signin_page(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.Response:
    t = Translator(_lang(request))
    nonce = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
    if error is None and request.query.get("expired"):
        error = t("signin.expired")
    response = _page(
        request,
        "signin.html",
        t,
        {"error": error, "nonce": nonce, "next": request.query.get("next", "")},
        status,
    )
    response.set_cookie(
        SIGNIN_COOKIE, nonce, path=BASE, httponly=True, samesite="Strict", max_age=3600
    )
    return response


def _safe_next(target: str) -> str:
    if target.startswith(BASE + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{BASE}/catalogue"


async def _signed_in(request: web.Request, party: Party, target: str) -> web.Response:
    book = request.app[SESSIONS_KEY]
    await in_thread(book.ensure_key)
    session = book.issue(party.id, party.token_hash, now_ms())
    CONSOLE_SIGNINS.labels("signed-in").inc()
    log.info("console sign-in", extra={"party": party.id})
    response = web.Response(status=303, headers={"Location": _safe_next(target)})
    _secure(response)
    response.set_cookie(
        COOKIE,
        session.cookie,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=int((session.expires_ms - now_ms()) / 1000),
    )
    response.del_cookie(SIGNIN_COOKIE, path=BASE)
    return response


async def signin(request: web.Request) -> web.Response:
    t = Translator(_lang(request))
    data = await request.post()
    nonce = request.cookies.get(SIGNIN_COOKIE)
    if not nonce or not secrets.compare_digest(str(data.get("nonce", "")), nonce):
        CONSOLE_SIGNINS.labels("csrf").inc()
        return await signin_page(request, t("csrf.failed"), 403)
    token = str(data.get("token", "")).strip()
    if not token:
        return await signin_page(request, t.field("token") + "：" + t.message("missing"), 400)
    authenticator = request.app[AUTHENTICATOR_KEY]
    try:
        party = await in_thread(authenticator.authenticate, f"Bearer {token}")
    except AuthError as exc:
        outcome = "suspended" if exc.status == 403 else "unknown-token"
        CONSOLE_SIGNINS.labels(outcome).inc()
        key = "signin.suspended" if exc.status == 403 else "signin.failed"
        return await signin_page(request, t(key), exc.status)
    return await _signed_in(request, party, str(data.get("next", "")))


async def signin_certificate(request: web.Request) -> web.Response:
    t = Translator(_lang(request))
    data = await request.post()
    nonce = request.cookies.get(SIGNIN_COOKIE)
    if not nonce or not secrets.compare_digest(str(data.get("nonce", "")), nonce):
        CONSOLE_SIGNINS.labels("csrf").inc()
        return await signin_page(request, t("csrf.failed"), 403)
    subject = _certificate_subject(request)
    if subject is None:
        CONSOLE_SIGNINS.labels("no-certificate").inc()
        return await signin_page(request, t("signin.no_cert"), 401)
    authenticator = request.app[AUTHENTICATOR_KEY]
    try:
        party = await in_thread(authenticator.authenticate_certificate, subject)
    except AuthError:
        CONSOLE_SIGNINS.labels("no-certificate").inc()
        return await signin_page(request, t("signin.no_cert"), 401)
    return await _signed_in(request, party, str(data.get("next", "")))


async def signout(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    await _form(request, viewer, "signout")
    response = web.Response(status=303, headers={"Location": f"{BASE}/signin"})
    response.del_cookie(COOKIE, path="/")
    return response


async def home(request: web.Request) -> web.Response:
    raise _redirect(f"{BASE}/catalogue")


# -- catalogue ---------------------------------------------------------------------------------
async def catalogue(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "catalogue")
    query = request.query
    try:
        filters = query_filters(query)
        error = None
    except ValueError as exc:
        filters, error = Filters(), str(exc)
    text = query.get("q", "")[:200]
    index = await in_thread(request.app[STORE_KEY].index)
    hits = index.find(filters, text)
    departments = sorted(
        {(r.department, r.department_name) for r in request.app[STATE_KEY].resources().values()}
    )
    context = {
        "items": [brief(h.resource) for h in hits[:500]],
        "total": len(hits),
        "q": text,
        "query": dict(query),
        "error": error,
        "departments": departments,
        "classifications": list(Classification),
        "shares": list(ShareAttribute),
        "tags": list(PersonalTag),
    }
    # htmx asks for the results only; a history restore wants the whole page.
    partial = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    name = "catalogue_results.html" if partial else "catalogue.html"
    return _page(request, name, viewer.t, context, viewer=viewer)


def _schema_versions(request: web.Request, resource: Resource) -> list[dict[str, Any]]:
    registry = request.app[STATE_KEY].registry
    try:
        versions = registry.versions(resource.subject)
        level = registry.effective_level(resource.subject).value
    except RegistryError:
        return []
    out = []
    previous = None
    for version in versions:
        row: dict[str, Any] = {
            "version": version.version,
            "id": version.schema_id,
            "fields": len(orjson.loads(version.schema).get("fields", [])),
            "level": level,
            "compatible": None,
            "problems": [],
        }
        if previous is not None:
            problems = registry.check_compatibility(
                resource.subject, version.schema, previous.version
            )
            row["compatible"], row["problems"] = not problems, problems
        out.append(row)
        previous = version
    return out


async def _resource_context(
    request: web.Request, viewer: Viewer, code: str
) -> tuple[Resource, dict[str, Any]]:
    state = request.app[STATE_KEY]
    resource = state.resource(code)
    if resource is None:
        raise web.HTTPNotFound(text=f"no resource {code}")
    entry = detail(request.app[STORE_KEY], state, resource)
    versions = await in_thread(_schema_versions, request, resource)
    defaults = effective_masking(
        resource,
        Subscription(
            id="preview",
            resource=code,
            subscriber=viewer.party.id,
            jurisdiction=viewer.party.region_code,
            purpose="-",
        ),
        viewer.party,
    )
    return resource, {
        "resource": resource,
        "entry": entry,
        "versions": versions,
        "default_masks": {k: _mask_text(v) for k, v in defaults.items()},
        "mask_choices": MASK_CHOICES,
        "can_request": viewer.who.has(Role.SUBSCRIBER) and bool(entry["subscribable"]),
        "form": {},
        "errors": {},
    }


async def resource_page(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "catalogue")
    _, context = await _resource_context(request, viewer, request.match_info["code"])
    return _page(request, "resource.html", viewer.t, context, viewer=viewer)


async def request_subscription(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "requests")
    form = await _form(request, viewer, "request")
    resource, context = await _resource_context(request, viewer, request.match_info["code"])
    names = [f.name for f in resource.fields]
    result = forms.subscription_request(form, resource.code, names, viewer.t)
    if result.model is not None:
        try:
            sub = await subs.request_subscription(request.app, viewer.party, result.model)
        except LifecycleError as exc:
            where, message = viewer.t.lifecycle_error(exc.message)
            result.errors[where] = message
            CONSOLE_ACTIONS.labels("request", "refused").inc()
        else:
            CONSOLE_ACTIONS.labels("request", "done").inc()
            raise _redirect(f"{BASE}/requests?sent={urllib.parse.quote(sub.id)}")
    else:
        CONSOLE_ACTIONS.labels("request", "invalid").inc()
    context.update(form=_form_echo(form), errors=result.errors)
    return _page(request, "resource.html", viewer.t, context, 400, viewer)


def _form_echo(form: forms.FormData) -> dict[str, Any]:
    echo: dict[str, Any] = {name: form.get(name, "") for name in form}
    echo["field"] = form.all("field")
    echo["unmask"] = form.all("unmask")
    echo["submitted"] = True
    return echo


# -- subscriptions as the pages show them -------------------------------------------------------
def _view(request: web.Request, sub: Subscription, t: Translator) -> dict[str, Any]:
    state = request.app[STATE_KEY]
    at = now_ms()
    doc = subs.render(sub, state.resource(sub.resource), state.party(sub.subscriber), at)
    party = state.party(sub.subscriber)
    resource = state.resource(sub.resource)
    doc["subscriber_name"] = party.name if party else sub.subscriber
    doc["resource_name"] = resource.name if resource else sub.resource
    doc["status_label"] = t.maybe("status", doc["effective_status"])
    doc["pending_labels"] = [t.maybe("approval", p) for p in doc["pending_approvals"]]
    doc["due"] = _when(doc.get("due_ms"))
    doc["open"] = sub.effective_status(at) in OPEN_STATES
    return doc


def _subscriptions(
    request: web.Request, viewer: Viewer, scope: str, **filters: Any
) -> list[Subscription]:
    return subs.select(request.app[STATE_KEY], viewer.who, scope, now_ms(), **filters)


async def my_requests(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "requests")
    found = await in_thread(_subscriptions, request, viewer, "mine")
    rows = [_view(request, s, viewer.t) for s in reversed(found)]
    notice = None
    sent = request.query.get("sent")
    if sent:
        mine = next((r for r in rows if r["id"] == sent), None)
        if mine is not None:
            notice = viewer.t("request.sent", id=sent, status=mine["status_label"])
    return _page(
        request, "requests.html", viewer.t, {"rows": rows, "notice": notice}, viewer=viewer
    )


# -- approvals -----------------------------------------------------------------------------------
async def approvals(
    request: web.Request,
    errors: dict[str, dict[str, str]] | None = None,
    echo: dict[str, dict[str, Any]] | None = None,
    status: int = 200,
) -> web.Response:
    viewer = await _viewer(request, "approvals")
    state = request.app[STATE_KEY]
    found = await in_thread(_subscriptions, request, viewer, "to_approve")
    owner_queue: list[dict[str, Any]] = []
    security_queue: list[dict[str, Any]] = []
    for sub in found:
        resource = state.resource(sub.resource)
        if resource is None:
            continue
        row = _view(request, sub, viewer.t)
        row["field_names"] = [(f.name, f.title, f.personal is not None) for f in resource.fields]
        row["classification"] = resource.classification.value
        givable = approval_roles_of(viewer.party, resource) & set(sub.pending_approvals)
        queue = security_queue if min(givable) is ApprovalRole.SECURITY else owner_queue
        queue.append(row)
    done = request.query.get("done")
    notice = None
    if done:
        decided = state.subscription(done)
        if decided is not None:
            label = viewer.t.maybe("status", decided.effective_status(now_ms()).value)
            notice = viewer.t("approvals.done", id=done, status=label)
    context = {
        "owner_queue": owner_queue,
        "security_queue": security_queue,
        "errors": errors or {},
        "echo": echo or {},
        "notice": notice,
        "mask_choices": MASK_CHOICES,
        "now_ms": now_ms(),
    }
    return _page(request, "approvals.html", viewer.t, context, status, viewer)


async def approve(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "approvals")
    form = await _form(request, viewer, "approve")
    sub_id = request.match_info["id"]
    sub = request.app[STATE_KEY].subscription(sub_id)
    resource = request.app[STATE_KEY].resource(sub.resource) if sub else None
    names = [f.name for f in resource.fields] if resource else []
    result = forms.approval(form, names, viewer.t)
    return await _decide(
        request,
        viewer,
        "approve",
        sub_id,
        form,
        result.errors,
        None
        if result.model is None
        else subs.approve_request(request.app, viewer.party, sub_id, result.model),
    )


async def reject(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "approvals")
    form = await _form(request, viewer, "reject")
    sub_id = request.match_info["id"]
    result = forms.reason(form, viewer.t)
    return await _decide(
        request,
        viewer,
        "reject",
        sub_id,
        form,
        result.errors,
        None
        if result.model is None
        else subs.reject_request(request.app, viewer.party, sub_id, result.model.reason),
    )


async def _decide(
    request: web.Request,
    viewer: Viewer,
    action: str,
    sub_id: str,
    form: forms.FormData,
    errors: dict[str, str],
    step: Any,
) -> web.Response:
    if step is not None:
        try:
            await step
        except LifecycleError as exc:
            where, message = viewer.t.lifecycle_error(exc.message)
            errors = {where: message}
            CONSOLE_ACTIONS.labels(action, "refused").inc()
        else:
            CONSOLE_ACTIONS.labels(action, "done").inc()
            raise _redirect(f"{BASE}/approvals?done={urllib.parse.quote(sub_id)}")
    else:
        CONSOLE_ACTIONS.labels(action, "invalid").inc()
    keyed = {f"{action}:{k}": v for k, v in errors.items()}
    echo = {**_form_echo(form), "action": action}
    return await approvals(request, {sub_id: keyed}, {sub_id: echo}, 400)


# -- subscriptions (grants) ------------------------------------------------------------------------
def _grant_scope(viewer: Viewer) -> str:
    if viewer.hub_wide:
        return "all"
    if viewer.who.has(Role.APPROVER, Role.PUBLISHER):
        return "owned"
    return "mine"


async def grants(
    request: web.Request, errors: dict[str, dict[str, str]] | None = None, status: int = 200
) -> web.Response:
    viewer = await _viewer(request, "subscriptions")
    state = request.app[STATE_KEY]
    scope = _grant_scope(viewer)
    found = await in_thread(_subscriptions, request, viewer, scope)
    show_all = request.query.get("all") == "1"
    at = now_ms()
    rows = []
    for sub in found:
        effective = sub.effective_status(at)
        if not show_all and effective not in (
            SubscriptionStatus.ACTIVE,
            SubscriptionStatus.APPROVED,
            SubscriptionStatus.SUSPENDED,
            SubscriptionStatus.REVOKED,
        ):
            continue
        resource = state.resource(sub.resource)
        row = _view(request, sub, viewer.t)
        row["may_revoke"] = row["open"] and (
            sub.subscriber == viewer.party.id
            or (resource is not None and manages(viewer.party, resource))
        )
        row["revoked_at"] = next(
            (e.at_ms for e in reversed(sub.history) if e.status is SubscriptionStatus.REVOKED),
            None,
        )
        rows.append(row)
    by = request.query.get("by", "resource")
    key = "resource" if by != "subscriber" else "subscriber"
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r[key], r["id"])):
        groups.setdefault(row[key], []).append(row)
    notice = None
    revoked = request.query.get("revoked")
    if revoked:
        notice = viewer.t("subs.revoked", id=revoked, ms=request.query.get("ms", "?"))
    context = {
        "groups": groups,
        "by": key,
        "show_all": show_all,
        "errors": errors or {},
        "notice": notice,
    }
    return _page(request, "subscriptions.html", viewer.t, context, status, viewer)


async def revoke(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "subscriptions")
    form = await _form(request, viewer, "revoke")
    sub_id = request.match_info["id"]
    result = forms.reason(form, viewer.t)
    if result.model is None:
        CONSOLE_ACTIONS.labels("revoke", "invalid").inc()
        return await grants(request, {sub_id: result.errors}, 400)
    started = time.monotonic()
    try:
        await subs.revoke_grant(request.app, viewer.party, sub_id, result.model.reason)
    except LifecycleError as exc:
        where, message = viewer.t.lifecycle_error(exc.message)
        CONSOLE_ACTIONS.labels("revoke", "refused").inc()
        return await grants(request, {sub_id: {where: message}}, 400)
    # revoke_grant returns once this instance has read its own write back from the
    # compacted topic, which is what every router and key release reads.
    ms = int((time.monotonic() - started) * 1000)
    CONSOLE_ACTIONS.labels("revoke", "done").inc()
    by = request.query.get("by", "resource")
    raise _redirect(
        f"{BASE}/subscriptions?by={by}&all=1&revoked={urllib.parse.quote(sub_id)}&ms={ms}"
    )


# -- live flow ---------------------------------------------------------------------------------
def _department_resources(request: web.Request, viewer: Viewer) -> set[str] | None:
    if viewer.hub_wide:
        return None
    dept = viewer.party.acts_for
    return {r.code for r in request.app[STATE_KEY].resources().values() if r.department == dept}


async def live_page(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "live")
    flow = request.app[LIVE_KEY]
    flow.ensure_started()
    tiers = ["department", "county", "township", "village"]
    labels = {
        "tiers": {k: viewer.t.maybe("tier", k) for k in [*tiers, "province", "city", "unknown"]},
        "disconnected": viewer.t("live.disconnected"),
        "no_data": viewer.t("live.no_data"),
    }
    context = {
        "hub_wide": viewer.hub_wide,
        "labels_json": orjson.dumps(labels).decode(),
    }
    return _page(request, "live.html", viewer.t, context, viewer=viewer)


async def live_stream(request: web.Request) -> web.StreamResponse:
    viewer = await _viewer(request, "live")
    flow = request.app[LIVE_KEY]
    flow.ensure_started()
    resources = _department_resources(request, viewer)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    _secure(response)
    await response.prepare(request)
    CONSOLE_LIVE_STREAMS.inc()
    try:
        while True:
            snapshot = await in_thread(flow.snapshot, resources, viewer.hub_wide)
            await response.write(b"event: flow\ndata: " + orjson.dumps(snapshot) + b"\n\n")
            await asyncio.sleep(LIVE_PUSH_S)
    except ConnectionResetError:  # the browser went away
        pass
    finally:
        CONSOLE_LIVE_STREAMS.dec()
    return response


# -- audit ---------------------------------------------------------------------------------------
def _parse_time(text: str) -> int | None:
    """``YYYY-MM-DDTHH:MM`` (a datetime-local input, China time) → ms; ValueError if bad."""
    if not text.strip():
        return None
    at = datetime.datetime.fromisoformat(text.strip())
    if at.tzinfo is None:
        at = at.replace(tzinfo=CHINA_TZ)
    return int(at.timestamp() * 1000)


async def audit_page(request: web.Request) -> web.Response:
    viewer = await _viewer(request, "audit")
    query = request.query
    errors: dict[str, str] = {}
    times: dict[str, int | None] = {}
    for name in ("since", "until"):
        try:
            times[name] = _parse_time(query.get(name, ""))
        except ValueError:
            errors[name] = viewer.t.message("other", query.get(name, ""))
            times[name] = None
    asked = any(query.get(k) for k in ("subscriber", "resource", "record_id", "since", "until"))
    result = None
    if asked and not errors:
        audit_query = AuditQuery(
            subscriber=query.get("subscriber") or None,
            resource=query.get("resource") or None,
            record_id=(query.get("record_id") or "").strip() or None,
            since_ms=times["since"],
            until_ms=times["until"],
        )
        state = request.app[STATE_KEY]
        sources = {
            r.code: state.topics.source(r.department, r.code) for r in state.resources().values()
        }
        try:
            result = await in_thread(request.app[AUDIT_KEY].search, audit_query, sources)
        except AuditQueryError as exc:
            errors[FORM_LEVEL] = str(exc)
    state = request.app[STATE_KEY]
    context = {
        "query": dict(query),
        "errors": errors,
        "result": result,
        "parties": sorted(state.party_map().values(), key=lambda p: p.id),
        "resources": sorted(state.resources().values(), key=lambda r: r.code),
    }
    return _page(request, "audit.html", viewer.t, context, 400 if errors else 200, viewer)


# -- wiring --------------------------------------------------------------------------------------
async def _lifecycle(app: web.Application) -> Any:
    yield
    app[LIVE_KEY].stop()


def setup_routes(app: web.Application) -> None:
    """Add the console's pages to the api application (after the other areas)."""
    state = app[STATE_KEY]
    app[_TEMPLATES_KEY] = templates()
    app[SESSIONS_KEY] = SessionBook(state.keys, app[KMS_KEY])
    app[LIVE_KEY] = LiveFlow(state)
    cfg = state.config.kafka
    app[AUDIT_KEY] = AuditView(cfg.bootstrap_servers, state.topics, cfg.client_config)
    app.cleanup_ctx.append(_lifecycle)
    routes: Iterable[tuple[str, str, Callable[..., Any]]] = (
        ("GET", BASE, home),
        ("GET", BASE + "/", home),
        ("GET", BASE + "/signin", signin_page),
        ("POST", BASE + "/signin", signin),
        ("POST", BASE + "/signin/certificate", signin_certificate),
        ("POST", BASE + "/signout", signout),
        ("GET", BASE + "/catalogue", catalogue),
        ("GET", BASE + "/catalogue/{code}", resource_page),
        ("POST", BASE + "/catalogue/{code}/request", request_subscription),
        ("GET", BASE + "/requests", my_requests),
        ("GET", BASE + "/approvals", approvals),
        ("POST", BASE + "/approvals/{id}/approve", approve),
        ("POST", BASE + "/approvals/{id}/reject", reject),
        ("GET", BASE + "/subscriptions", grants),
        ("POST", BASE + "/subscriptions/{id}/revoke", revoke),
        ("GET", BASE + "/live", live_page),
        ("GET", BASE + "/live/stream", live_stream),
        ("GET", BASE + "/audit", audit_page),
    )
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    app.router.add_static(BASE + "/static", _HERE / "static", append_version=True)
