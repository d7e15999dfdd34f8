"""Recipients' data keys (``/v1/parties/{id}/data-keys``): listing and crypto-shredding.

A security admin (安全保密管理员) may delete a recipient's data keys, for recall (GB/T
39477) or when its key material is compromised. Each key record in ``_govhub.keys`` gets a
tombstone: the api stops releasing the key at once and, when the compacted topic drops the
record, no copy is left in the hub. Every frame sealed under a deleted key is then
unreadable for good — unless a subscriber kept the plaintext key it was given before, which
no hub can take back. The party itself and security admins may list the keys' metadata
(never key material).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.context import STATE_KEY, in_thread, json_response
from hub.api.openapi import json_body, operation, path_param
from hub.api.security import json_error, read_json, require
from hub.controlstate import CompactedTable, ControlStateError
from hub.parties.model import PARTY_ID_PATTERN, Role

log = logging.getLogger(__name__)

_KEY_ID = re.compile(r"^[0-9a-f]{32}$")
CATCH_UP_S = 10.0


class DataKeyDeletion(BaseModel):
    """Body of ``POST /v1/parties/{id}/data-keys/delete``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, description="why (kept in the log)")
    key_ids: tuple[str, ...] | None = Field(
        default=None,
        max_length=10_000,
        description="only these key ids (32 hex digits); omitted: every key of the party",
    )


def _rows_of(keys: CompactedTable, party_id: str) -> dict[str, dict[str, Any]]:
    """The party's key records by key id (hex). Record keys are ``<party>/<key id hex>``;
    party ids cannot contain ``/`` or start with ``_``, so nothing else matches."""
    prefix = f"{party_id}/"
    return {key.removeprefix(prefix): row for key, row in keys.items() if key.startswith(prefix)}


def _caught_up(keys: CompactedTable) -> None:
    """Read every key record committed so far (a router may have just written one)."""
    try:
        ready = keys.catch_up(CATCH_UP_S)
    except Exception as exc:  # the client library raises for a broker it cannot reach
        raise json_error(503, f"data keys not readable right now: {exc}") from None
    if not ready:
        raise json_error(503, "data keys not readable right now: try again")


def _party_id(request: web.Request) -> str:
    party_id = request.match_info["id"]
    if not re.match(PARTY_ID_PATTERN, party_id):
        raise json_error(400, f"{party_id!r} is not a party id")
    return party_id


async def list_data_keys(request: web.Request) -> web.Response:
    who = await require(request)
    party_id = _party_id(request)
    if who.id != party_id and not who.has(Role.SECURITY_ADMIN):
        raise json_error(403, "a party lists its own data keys (or a security admin does)")
    keys = request.app[STATE_KEY].keys
    await in_thread(_caught_up, keys)
    rows = _rows_of(keys, party_id)
    shown = [
        {
            "key_id": key_id,
            "suite": row.get("suite"),
            "created_at_ms": row.get("created_at_ms"),
            "not_after_ms": row.get("not_after_ms"),
        }
        for key_id, row in sorted(rows.items(), key=lambda item: item[1].get("created_at_ms", 0))
    ]
    return json_response({"party": party_id, "keys": shown, "count": len(shown)})


def _delete(keys: CompactedTable, party_id: str, wanted: tuple[str, ...] | None) -> list[str]:
    _caught_up(keys)
    rows = _rows_of(keys, party_id)
    if wanted is None:
        chosen = sorted(rows)
    else:
        unknown = sorted(set(wanted) - rows.keys())
        if unknown:
            raise json_error(404, f"{party_id} has no data keys {unknown[:5]}")
        chosen = sorted(set(wanted))
    if not chosen:
        raise json_error(404, f"{party_id} has no data keys")
    try:
        for number, key_id in enumerate(chosen, 1):
            # Read back only the last tombstone: the table applies them in order.
            keys.put(f"{party_id}/{key_id}", None, read_back=number == len(chosen))
    except ControlStateError as exc:
        raise json_error(503, f"data keys not writable right now: {exc}") from None
    return chosen


async def delete_data_keys(request: web.Request) -> web.Response:
    who = await require(request, Role.SECURITY_ADMIN)
    party_id = _party_id(request)
    body = await read_json(request, DataKeyDeletion)
    if body.key_ids is not None:
        bad = [k for k in body.key_ids if not _KEY_ID.match(k)]
        if bad:
            raise json_error(400, f"key_ids: not 32 lower-case hex digits: {bad[:3]}")
    keys = request.app[STATE_KEY].keys
    deleted = await in_thread(_delete, keys, party_id, body.key_ids)
    log.warning(
        "data keys deleted",
        extra={"party": party_id, "keys": len(deleted), "by": who.id, "reason": body.reason},
    )
    return json_response({"party": party_id, "deleted": deleted, "count": len(deleted)})


def setup_routes(app: web.Application) -> None:
    """Add this area's routes to the api application."""
    app.router.add_get("/v1/parties/{id}/data-keys", list_data_keys)
    app.router.add_post("/v1/parties/{id}/data-keys/delete", delete_data_keys)


# -- OpenAPI ----------------------------------------------------------------------------------
_TAG = "keys"
_ID = path_param("id", PARTY_ID_PATTERN, "party id (the recipient)")
OPENAPI_MODELS = (DataKeyDeletion,)
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/parties/{id}/data-keys": {
        "get": operation(
            "List a recipient's data keys (ids, suite, lifetime; never key material)",
            _TAG,
            parameters=[_ID],
            roles="the party itself, security_admin",
            errors=(400, 401, 403, 503),
        ),
    },
    "/v1/parties/{id}/data-keys/delete": {
        "post": operation(
            "Delete a recipient's data keys (crypto-shredding): key release stops at once "
            "and frames sealed under them become unreadable for good",
            _TAG,
            body=json_body(DataKeyDeletion),
            parameters=[_ID],
            roles="security_admin",
            errors=(400, 401, 403, 404, 503),
        ),
    },
}
