"""The ``api`` role: the aiohttp application with health, metrics and key release, plus the
routes of each control-plane area (registry, catalogue, parties, subscriptions)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from hub import metrics
from hub.api import (
    catalogue_routes,
    key_routes,
    party_routes,
    registry_routes,
    subscription_routes,
)
from hub.api.auth import TokenAuthenticator
from hub.api.context import KMS_KEY, READY_KEY, STATE_KEY, in_thread, json_response
from hub.api.security import AUTHENTICATOR_KEY, install_limits, principal
from hub.audit import api as audit_api
from hub.console import routes as console_routes
from hub.crypto.errors import CryptoError
from hub.crypto.keyrelease import KemSuite, seal_key_for_recipient
from hub.crypto.keys import DataKeyRecord, unwrap_data_key
from hub.crypto.kms import Kms
from hub.state import ControlState

log = logging.getLogger(__name__)

KEY_WAIT_S = 3.0
ROUTE_MODULES = (registry_routes, catalogue_routes, party_routes, key_routes, subscription_routes)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        metrics.API_REQUESTS.labels(name, request.method, str(exc.status)).inc()
        raise
    metrics.API_REQUESTS.labels(name, request.method, str(response.status)).inc()
    return response


# -- health and metrics ------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = request.app[READY_KEY]()
    if problems:
        return json_response({"status": "not ready", "reasons": problems}, 503)
    return json_response({"status": "ready"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = metrics.render_latest()
    return web.Response(body=body, headers={"Content-Type": content_type})


# -- key release ---------------------------------------------------------------------------
async def release_key(request: web.Request) -> web.Response:
    """Wrap a recipient's data key for its registered public key (HPKE).

    Released only while the named subscription belongs to the caller and is active, so a
    revocation stops key release at once.
    """
    state = request.app[STATE_KEY]
    try:
        party = (await principal(request)).party
    except web.HTTPException:
        metrics.API_KEY_RELEASES.labels("unauthenticated").inc()
        raise
    try:
        body = orjson.loads(await request.read())
        key_id = bytes.fromhex(body["key_id"])
        subscription_id = str(body["subscription"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        metrics.API_KEY_RELEASES.labels("bad-request").inc()
        return json_response(
            {"error": "body must be JSON with 'key_id' (hex) and 'subscription'"}, 400
        )
    subscription = state.subscription(subscription_id)
    if subscription is None or subscription.subscriber != party.id:
        metrics.API_KEY_RELEASES.labels("denied").inc()
        return json_response({"error": f"subscription {subscription_id} is not yours"}, 403)
    if not subscription.is_active():
        metrics.API_KEY_RELEASES.labels("denied").inc()
        return json_response(
            {"error": f"subscription {subscription_id} is {subscription.status.value} or expired"},
            403,
        )
    key = f"{party.id}/{key_id.hex()}"
    row = state.keys.get(key)
    if row is None:
        # The router commits a key with the first frames that use it; a subscriber may ask
        # before this replica's keys table has read that commit: give it a moment.
        await in_thread(state.keys.wait_for, lambda t: t.get(key) is not None, KEY_WAIT_S)
        row = state.keys.get(key)
    if row is None:
        metrics.API_KEY_RELEASES.labels("unknown-key").inc()
        return json_response({"error": "no such key for this recipient"}, 404)
    if not party.public_keys:
        metrics.API_KEY_RELEASES.labels("no-public-key").inc()
        return json_response({"error": f"party {party.id} has no registered public key"}, 409)
    public = party.public_keys[-1]
    try:
        record = DataKeyRecord.from_json(orjson.dumps(row))
        dek = unwrap_data_key(request.app[KMS_KEY], record)
        kem = KemSuite(public.kem)
        sealed = seal_key_for_recipient(
            dek, base64.b64decode(public.key), kem, party.id, record.key_id
        )
    except (CryptoError, ValueError) as exc:
        metrics.API_KEY_RELEASES.labels("error").inc()
        log.error("key release failed for %s: %s", party.id, exc)
        return json_response({"error": "key release failed"}, 500)
    metrics.API_KEY_RELEASES.labels("released").inc()
    return json_response(
        {
            "key_id": record.key_id.hex(),
            "suite": record.suite.name,
            "kem": kem.value,
            "sealed": base64.b64encode(sealed).decode(),
            "not_after_ms": record.not_after_ms,
        }
    )


def build_app(
    state: ControlState, kms: Kms, readiness: Callable[[], list[str]] | None = None
) -> web.Application:
    app = web.Application(middlewares=[count_requests], client_max_size=4 * 1024 * 1024)
    app[STATE_KEY] = state
    app[KMS_KEY] = kms
    app[AUTHENTICATOR_KEY] = TokenAuthenticator(state)
    app[READY_KEY] = readiness or (lambda: [])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_post("/v1/keys/release", release_key)
    for module in ROUTE_MODULES:
        module.setup_routes(app)
    audit_api.setup(app)
    install_limits(app)
    console_routes.setup_routes(app)  # the web console (/console), on the same domain steps
    return app
