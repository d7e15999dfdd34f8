"""Party, credential and role endpoints (``/v1/parties``).

Who may do what:

- system admin: create parties, update their descriptive fields, set roles of *other*
  parties, suspend and resume them, rotate tokens of parties outside the 三员 roles;
- security admin: add public keys to any party;
- every party: read itself, rotate its own token, add its own public keys, set its contact.

Tokens are returned in clear once, at creation and rotation; only scrypt hashes are kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from hub.api.context import STATE_KEY, in_thread, json_response
from hub.api.openapi import json_body, operation, path_param, query_param
from hub.api.security import Principal, json_error, read_json, require
from hub.controlstate import ControlStateError
from hub.parties import rules
from hub.parties.model import PARTY_ID_PATTERN, SEPARATED_ROLES, Party, PartyStatus, Role
from hub.parties.requests import (
    KeyAdd,
    PartyCreate,
    PartyUpdate,
    RolesUpdate,
    StatusChange,
    TokenRotate,
)
from hub.parties.rules import PartyError
from hub.state import ControlState
from hub.subscriptions.model import now_ms
from hub.subscriptions.store import catch_up

_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("party-writes", asyncio.Lock)


def render(party: Party) -> dict[str, Any]:
    """A party as the api shows it: never its token hash."""
    doc = party.model_dump(mode="json", exclude={"token_hash"})
    doc["has_token"] = party.token_hash is not None
    doc["acts_for"] = party.acts_for
    return doc


def _descends_from(party: Party, ancestor: str, parties: Mapping[str, Party]) -> bool:
    node: Party | None = party
    seen: set[str] = set()
    while node is not None and node.parent is not None and node.id not in seen:
        if node.parent == ancestor:
            return True
        seen.add(node.id)
        node = parties.get(node.parent)
    return False


def _may_read(who: Principal, party: Party, parties: Mapping[str, Party]) -> bool:
    return who.id == party.id or who.has(*SEPARATED_ROLES) or _descends_from(party, who.id, parties)


# -- blocking steps ---------------------------------------------------------------------------
def _commit(state: ControlState, before: Party | None, after: Party) -> None:
    current = state.party(after.id)
    expected = None if before is None else before.version
    if (None if current is None else current.version) != expected:
        raise PartyError(409, f"party {after.id} changed meanwhile; read it and retry")
    try:
        state.put_party(after)
    except ControlStateError as exc:
        raise PartyError(503, f"control state not writable: {exc}") from None


def _catch_up(state: ControlState) -> None:
    try:
        catch_up(state.parties)
    except ControlStateError as exc:
        raise PartyError(503, f"control state not readable: {exc}") from None


def _create(state: ControlState, body: PartyCreate) -> tuple[Party, str]:
    _catch_up(state)
    fields = body.model_dump(exclude={"token_ttl_days"})
    party = rules.build_party(fields, state.party_map())
    party, token = rules.issue_token(party, body.token_ttl_days, now_ms())
    _commit(state, None, party)
    return party, token


Change = Callable[[Party], Party]


def _change(state: ControlState, party_id: str, change: Change) -> Party:
    _catch_up(state)
    party = state.party(party_id)
    if party is None:
        raise PartyError(404, f"no party {party_id}")
    after = change(party)
    _commit(state, party, after)
    return after


async def _run(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    async with request.app[_LOCK_KEY]:
        try:
            return await in_thread(fn, *args)
        except PartyError as exc:
            raise json_error(exc.status, exc.message) from None


def _target(request: web.Request) -> str:
    return request.match_info["id"]


# -- handlers ---------------------------------------------------------------------------------
async def create_party(request: web.Request) -> web.Response:
    await require(request, Role.SYSTEM_ADMIN)
    body = await read_json(request, PartyCreate)
    party, token = await _run(request, _create, request.app[STATE_KEY], body)
    return json_response({"party": render(party), "token": token}, 201)


async def list_parties(request: web.Request) -> web.Response:
    who = await require(request)
    state = request.app[STATE_KEY]
    parties = await in_thread(state.party_map)
    kind, status, parent = (request.query.get(k) for k in ("kind", "status", "parent"))
    shown = []
    for party in sorted(parties.values(), key=lambda p: p.id):
        if not _may_read(who, party, parties):
            continue
        if kind is not None and party.kind.value != kind:
            continue
        if status is not None and party.status.value != status:
            continue
        if parent is not None and party.parent != parent:
            continue
        shown.append(render(party))
    return json_response({"parties": shown, "count": len(shown)})


async def show_party(request: web.Request) -> web.Response:
    who = await require(request)
    state = request.app[STATE_KEY]
    party = state.party(_target(request))
    if party is None:
        raise json_error(404, f"no party {_target(request)}")
    if not _may_read(who, party, await in_thread(state.party_map)):
        raise json_error(403, f"party {party.id} is neither you nor below you")
    return json_response(render(party))


async def update_party(request: web.Request) -> web.Response:
    who = await require(request)
    body = await read_json(request, PartyUpdate)
    state = request.app[STATE_KEY]
    target = _target(request)
    admin = who.has(Role.SYSTEM_ADMIN)
    if not admin and (who.id != target or body.name is not None or body.mtls_subject is not None):
        raise json_error(
            403, "only a system admin may update a party; a party may set its own contact"
        )
    # name cannot be cleared; contact and mtls_subject can (null)
    changes = {
        k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k != "name"
    }

    def change(party: Party) -> Party:
        after = Party.model_validate(
            {**party.model_dump(), **changes, "version": party.version + 1}
        )
        rules.check_mtls_subject(after, state.party_map())
        return after

    party = await _run(request, _change, state, target, change)
    return json_response(render(party))


async def rotate_token(request: web.Request) -> web.Response:
    who = await require(request)
    body = await read_json(request, TokenRotate, optional=True)
    target = _target(request)
    result: dict[str, str] = {}

    def change(party: Party) -> Party:
        if who.id != party.id:
            if not who.has(Role.SYSTEM_ADMIN):
                raise PartyError(403, "a party rotates its own token (or a system admin does)")
            if SEPARATED_ROLES.intersection(party.roles):
                raise PartyError(
                    403,
                    f"三员 separation: the token of {party.id} ({party.roles[0].value}) can "
                    "only be rotated by its holder",
                )
        after, token = rules.issue_token(party, body.ttl_days, now_ms())
        result["token"] = token
        return after

    party = await _run(request, _change, request.app[STATE_KEY], target, change)
    return json_response(
        {
            "party": render(party),
            "token": result["token"],
            "expires_at_ms": party.token_expires_at_ms,
        }
    )


async def add_key(request: web.Request) -> web.Response:
    who = await require(request)
    body = await read_json(request, KeyAdd)
    target = _target(request)
    if who.id != target and not who.has(Role.SECURITY_ADMIN):
        raise json_error(403, "a party adds its own public keys (or a security admin does)")
    try:
        key = await in_thread(rules.decode_public_key, body.kem, body.key, now_ms())
    except PartyError as exc:
        raise json_error(exc.status, exc.message) from None

    def change(party: Party) -> Party:
        return rules.add_public_key(party, key)

    party = await _run(request, _change, request.app[STATE_KEY], target, change)
    return json_response(render(party), 201)


async def set_roles(request: web.Request) -> web.Response:
    who = await require(request, Role.SYSTEM_ADMIN)
    body = await read_json(request, RolesUpdate)

    def change(party: Party) -> Party:
        return rules.set_roles(who.party, party, body.roles)

    party = await _run(request, _change, request.app[STATE_KEY], _target(request), change)
    return json_response(render(party))


def _status_handler(status: PartyStatus) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        who = await require(request, Role.SYSTEM_ADMIN)
        await read_json(request, StatusChange, optional=True)
        target = _target(request)
        if who.id == target:
            raise json_error(403, f"party {who.id} cannot change its own status")

        def change(party: Party) -> Party:
            if party.status is status:
                raise PartyError(409, f"party {party.id} is already {status.value}")
            return party.model_copy(update={"status": status, "version": party.version + 1})

        party = await _run(request, _change, request.app[STATE_KEY], target, change)
        return json_response(render(party))

    return handler


def setup_routes(app: web.Application) -> None:
    """Add this area's routes to the api application."""
    app[_LOCK_KEY] = asyncio.Lock()
    app.router.add_post("/v1/parties", create_party)
    app.router.add_get("/v1/parties", list_parties)
    app.router.add_get("/v1/parties/{id}", show_party)
    app.router.add_patch("/v1/parties/{id}", update_party)
    app.router.add_post("/v1/parties/{id}/token", rotate_token)
    app.router.add_post("/v1/parties/{id}/keys", add_key)
    app.router.add_put("/v1/parties/{id}/roles", set_roles)
    app.router.add_post("/v1/parties/{id}/suspend", _status_handler(PartyStatus.SUSPENDED))
    app.router.add_post("/v1/parties/{id}/resume", _status_handler(PartyStatus.ACTIVE))


# -- OpenAPI ----------------------------------------------------------------------------------
_TAG = "parties"
_ID = path_param("id", PARTY_ID_PATTERN, "party id")
OPENAPI_MODELS = (PartyCreate, PartyUpdate, RolesUpdate, TokenRotate, KeyAdd, StatusChange)
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/parties": {
        "post": operation(
            "Create a party; returns its first token once",
            _TAG,
            ok=201,
            body=json_body(PartyCreate),
            roles="system_admin",
            errors=(400, 401, 403, 409),
        ),
        "get": operation(
            "List parties (三员: all; others: themselves and the units below them)",
            _TAG,
            parameters=[
                query_param("kind", {"type": "string", "enum": ["department", "unit"]}, "kind"),
                query_param(
                    "status", {"type": "string", "enum": ["active", "suspended"]}, "status"
                ),
                query_param("parent", {"type": "string"}, "parent party id"),
            ],
            errors=(401,),
        ),
    },
    "/v1/parties/{id}": {
        "get": operation("Show a party", _TAG, parameters=[_ID], errors=(401, 403, 404)),
        "patch": operation(
            "Update name, contact or mTLS subject",
            _TAG,
            body=json_body(PartyUpdate),
            parameters=[_ID],
            roles="system_admin; a party may set its own contact",
        ),
    },
    "/v1/parties/{id}/token": {
        "post": operation(
            "Rotate the token (the old one stops at once); returns the new token once",
            _TAG,
            body=json_body(TokenRotate, required=False),
            parameters=[_ID],
            roles="the party itself; system_admin for parties outside the 三员 roles",
        ),
    },
    "/v1/parties/{id}/keys": {
        "post": operation(
            "Add a public key for key release (the newest is used; older ones are kept)",
            _TAG,
            ok=201,
            body=json_body(KeyAdd),
            parameters=[_ID],
            roles="the party itself, security_admin",
        ),
    },
    "/v1/parties/{id}/roles": {
        "put": operation(
            "Set the roles of another party (三员 separation enforced)",
            _TAG,
            body=json_body(RolesUpdate),
            parameters=[_ID],
            roles="system_admin (never for itself)",
        ),
    },
    "/v1/parties/{id}/suspend": {
        "post": operation(
            "Suspend a party: its token stops working and its routes stop",
            _TAG,
            body=json_body(StatusChange, required=False),
            parameters=[_ID],
            roles="system_admin",
        ),
    },
    "/v1/parties/{id}/resume": {
        "post": operation(
            "Resume a suspended party",
            _TAG,
            body=json_body(StatusChange, required=False),
            parameters=[_ID],
            roles="system_admin",
        ),
    },
}
