"""Who is calling: the authenticated party and its roles, checked by every endpoint.

Handlers call :func:`require` with the roles that may use them; it authenticates the
bearer token once per request (cached on the request) and raises an HTTP error with a
clear JSON message otherwise.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from aiohttp import web

from hub.api.auth import AuthError, TokenAuthenticator
from hub.parties.model import Party, PartyKind, Role

AUTHENTICATOR_KEY: web.AppKey[TokenAuthenticator] = web.AppKey("authenticator", TokenAuthenticator)


@dataclass(frozen=True, slots=True)
class Principal:
    party: Party

    @property
    def id(self) -> str:
        return self.party.id

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(self.party.roles)

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def owns_department(self, department: str) -> bool:
        """A department party manages the resources whose department code is its id."""
        return self.party.kind is PartyKind.DEPARTMENT and self.party.id == department


_PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("govhub.principal", Principal)


def json_error(status: int, message: str) -> web.HTTPException:
    """An HTTP error with a JSON body ``{"error": message}``."""
    classes: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
    }
    cls = classes.get(status, web.HTTPBadRequest)
    return cls(text=orjson.dumps({"error": message}).decode(), content_type="application/json")


async def principal(request: web.Request) -> Principal:
    """The authenticated caller (401 without a valid token, 403 when suspended)."""
    if _PRINCIPAL in request:
        return request[_PRINCIPAL]
    authenticator = request.app[AUTHENTICATOR_KEY]
    try:
        party = await asyncio.get_running_loop().run_in_executor(
            None, authenticator.authenticate, request.headers.get("Authorization")
        )
    except AuthError as exc:
        raise json_error(exc.status, str(exc)) from None
    found = Principal(party)
    request[_PRINCIPAL] = found
    return found


async def require(request: web.Request, *roles: Role) -> Principal:
    """The caller, if it holds one of ``roles`` (any authenticated party when none given)."""
    who = await principal(request)
    if roles and not who.has(*roles):
        wanted = ", ".join(sorted(r.value for r in roles))
        raise json_error(403, f"party {who.id} lacks the role for this call (one of: {wanted})")
    return who
