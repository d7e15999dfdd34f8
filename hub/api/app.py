"""The ``api`` role: schema registry (Confluent REST subset), key release, health, metrics."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from hub import metrics
from hub.api.auth import TokenAuthenticator
from hub.api.security import AUTHENTICATOR_KEY, principal
from hub.crypto.errors import CryptoError
from hub.crypto.keyrelease import KemSuite, seal_key_for_recipient
from hub.crypto.keys import DataKeyRecord, unwrap_data_key
from hub.crypto.kms import Kms
from hub.registry.schemas import SchemaError
from hub.registry.store import SchemaNotFound, SubjectNotFound
from hub.state import ControlState

log = logging.getLogger(__name__)

SR_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
STATE_KEY: web.AppKey[ControlState] = web.AppKey("state", ControlState)
KMS_KEY: web.AppKey[Kms] = web.AppKey("kms", object)  # type: ignore[arg-type]
READY_KEY: web.AppKey[Callable[[], list[str]]] = web.AppKey("ready", object)  # type: ignore[arg-type]


def _json(data: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=content_type)


def sr_error(status: int, code: int, message: str) -> web.Response:
    """An error in the Confluent shape, so stock clients report it properly."""
    return _json({"error_code": code, "message": message}, status, SR_CONTENT_TYPE)


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
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = request.app[READY_KEY]()
    if problems:
        return _json({"status": "not ready", "reasons": problems}, 503)
    return _json({"status": "ready"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = metrics.render_latest()
    return web.Response(body=body, headers={"Content-Type": content_type})


# -- schema registry -----------------------------------------------------------------------
async def get_schema_by_id(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        schema_id = int(request.match_info["id"])
        schema = state.registry.schema(schema_id)
    except (ValueError, SchemaNotFound):
        return sr_error(404, 40403, "Schema not found")
    return _json({"schema": schema}, content_type=SR_CONTENT_TYPE)


async def list_subjects(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].registry.subjects(), content_type=SR_CONTENT_TYPE)


async def list_versions(request: web.Request) -> web.Response:
    versions = request.app[STATE_KEY].registry.versions(request.match_info["subject"])
    if not versions:
        return sr_error(404, 40401, "Subject not found")
    return _json([v.version for v in versions], content_type=SR_CONTENT_TYPE)


async def get_version(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    try:
        sv = request.app[STATE_KEY].registry.version(subject, request.match_info["version"])
    except SubjectNotFound:
        return sr_error(404, 40402, "Version not found")
    except ValueError:
        return sr_error(422, 42202, "Invalid version")
    return _json(
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
        schema_id = await _in_thread(state.registry.register, subject, schema)
    except SchemaError as exc:
        return sr_error(422, 42201, f"Invalid schema: {exc}")
    return _json({"id": schema_id}, content_type=SR_CONTENT_TYPE)


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
        return _json({"error": "body must be JSON with 'key_id' (hex) and 'subscription'"}, 400)
    subscription = state.subscription(subscription_id)
    if subscription is None or subscription.subscriber != party.id:
        metrics.API_KEY_RELEASES.labels("denied").inc()
        return _json({"error": f"subscription {subscription_id} is not yours"}, 403)
    if not subscription.is_active():
        metrics.API_KEY_RELEASES.labels("denied").inc()
        return _json(
            {"error": f"subscription {subscription_id} is {subscription.status.value} or expired"},
            403,
        )
    row = state.keys.get(f"{party.id}/{key_id.hex()}")
    if row is None:
        metrics.API_KEY_RELEASES.labels("unknown-key").inc()
        return _json({"error": "no such key for this recipient"}, 404)
    if not party.public_keys:
        metrics.API_KEY_RELEASES.labels("no-public-key").inc()
        return _json({"error": f"party {party.id} has no registered public key"}, 409)
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
        return _json({"error": "key release failed"}, 500)
    metrics.API_KEY_RELEASES.labels("released").inc()
    return _json(
        {
            "key_id": record.key_id.hex(),
            "suite": record.suite.name,
            "kem": kem.value,
            "sealed": base64.b64encode(sealed).decode(),
            "not_after_ms": record.not_after_ms,
        }
    )


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Blocking work (slow hashes, Kafka round trips) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


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
    app.router.add_get("/schemas/ids/{id}", get_schema_by_id)
    app.router.add_get("/subjects", list_subjects)
    app.router.add_get("/subjects/{subject}/versions", list_versions)
    app.router.add_get("/subjects/{subject}/versions/{version}", get_version)
    app.router.add_post("/subjects/{subject}/versions", register_version)
    app.router.add_post("/v1/keys/release", release_key)
    return app
