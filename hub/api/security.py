"""Who is calling: the authenticated party and its roles, checked by every endpoint.

Handlers call :func:`require` with the roles that may use them; it authenticates the
bearer token (or a verified client certificate, when the api terminates TLS) once per
request (cached on the request) and raises an HTTP error with a clear JSON message
otherwise. :func:`read_json` turns a request body into a typed model or a 400 that names
the offending field.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub import metrics
from hub.api.auth import AuthError, TokenAuthenticator
from hub.parties.model import Party, PartyKind, Role

AUTHENTICATOR_KEY: web.AppKey[TokenAuthenticator] = web.AppKey("authenticator", TokenAuthenticator)


class RateLimiter:
    """Token buckets by key: ``rate`` requests per second, bursts up to ``burst``.

    Bounded: past ``max_keys`` keys the fullest buckets are forgotten first (a forgotten
    bucket starts full again, which only ever errs towards admitting).
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def wait_time(self, key: str) -> float:
        """Seconds until ``key`` may make one more request (0: now); consumes nothing."""
        level = self._level(key, self._clock())
        return 0.0 if level >= 1 else (1 - level) / self.rate

    def take(self, key: str) -> float:
        """Take one token: 0 when admitted, else the seconds to wait (nothing taken)."""
        now = self._clock()
        level = self._level(key, now)
        if level < 1:
            self._buckets[key] = (level, now)
            return (1 - level) / self.rate
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            self._forget(now)
        self._buckets[key] = (level - 1, now)
        return 0.0

    def _forget(self, now: float) -> None:
        full = [k for k in self._buckets if self._level(k, now) >= self.burst]
        for key in full or list(self._buckets)[: self._max_keys // 10 or 1]:
            del self._buckets[key]


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """Per-party request rate and per-address failed sign-ins (429 with Retry-After)."""

    party: RateLimiter
    failed_sign_ins: RateLimiter


def default_limits() -> ApiLimits:
    # 100 requests/s per party with bursts of 500 (bulk provisioning, console pages);
    # 20 failed sign-ins per address at once, then one per second.
    return ApiLimits(RateLimiter(100.0, 500.0), RateLimiter(1.0, 20.0))


LIMITS_KEY: web.AppKey[ApiLimits] = web.AppKey("limits", ApiLimits)


def install_limits(app: web.Application, limits: ApiLimits | None = None) -> None:
    app[LIMITS_KEY] = limits or default_limits()


def _too_many(wait: float, message: str) -> web.HTTPException:
    seconds = max(1, math.ceil(wait))
    return web.HTTPTooManyRequests(
        text=orjson.dumps({"error": message}).decode(),
        content_type="application/json",
        headers={"Retry-After": str(seconds)},
    )


def _admit_rate(request: web.Request, who: Principal) -> None:
    limits = request.app.get(LIMITS_KEY)
    if limits is None:
        return
    wait = limits.party.take(who.id)
    if wait > 0:
        metrics.API_LIMITED.labels("rate").inc()
        raise _too_many(wait, f"party {who.id} is over its request rate; retry later")


B = TypeVar("B", bound=BaseModel)


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
        """Whether this party acts for ``department`` (the department itself, or an account
        whose ``department`` it is)."""
        return self.party.acts_for == department

    @property
    def is_department(self) -> bool:
        return self.party.kind is PartyKind.DEPARTMENT


_PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("govhub.principal", Principal)

_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def json_error(status: int, message: str) -> web.HTTPException:
    """An HTTP error with a JSON body ``{"error": message}``."""
    cls = _ERRORS.get(status, web.HTTPBadRequest)
    return cls(text=orjson.dumps({"error": message}).decode(), content_type="application/json")


def _certificate_subject(request: web.Request) -> str | None:
    transport = request.transport
    cert: Any = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    parts = []
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
            parts.append(f"{short.get(name, name)}={value}")
    return ",".join(parts) or None


async def principal(request: web.Request) -> Principal:
    """The authenticated caller (401 without valid credentials, 403 when suspended)."""
    if _PRINCIPAL in request:
        return request[_PRINCIPAL]
    authenticator = request.app[AUTHENTICATOR_KEY]
    authorization = request.headers.get("Authorization")
    fast = authenticator.authenticate_cached(authorization) if authorization else None
    if fast is not None:
        found = Principal(fast)
        _admit_rate(request, found)
        request[_PRINCIPAL] = found
        return found
    limits = request.app.get(LIMITS_KEY)
    address = request.remote or "unknown"
    if limits is not None:
        wait = limits.failed_sign_ins.wait_time(address)
        if wait > 0:
            # Before the slow hash: guessing tokens costs the guesser, not the hub.
            metrics.API_LIMITED.labels("failed-sign-ins").inc()
            raise _too_many(wait, "too many failed sign-ins from this address; retry later")
    subject = None if authorization else _certificate_subject(request)
    loop = asyncio.get_running_loop()
    try:
        if subject is not None:
            party = await loop.run_in_executor(
                None, authenticator.authenticate_certificate, subject
            )
        else:
            party = await loop.run_in_executor(None, authenticator.authenticate, authorization)
    except AuthError as exc:
        if limits is not None and exc.status == 401 and authorization:
            # A presented credential that failed is a guess; no credential at all is not.
            limits.failed_sign_ins.take(address)
        raise json_error(exc.status, str(exc)) from None
    found = Principal(party)
    _admit_rate(request, found)
    request[_PRINCIPAL] = found
    return found


def peek_principal(request: web.Request) -> Principal | None:
    """The caller if this request already authenticated it (no authentication here)."""
    return request.get(_PRINCIPAL)


async def require(request: web.Request, *roles: Role) -> Principal:
    """The caller, if it holds one of ``roles`` (any authenticated party when none given)."""
    who = await principal(request)
    if roles and not who.has(*roles):
        wanted = ", ".join(sorted(r.value for r in roles))
        raise json_error(403, f"party {who.id} lacks the role for this call (one of: {wanted})")
    return who


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts[:10])


async def read_json(request: web.Request, model: type[B], *, optional: bool = False) -> B:
    """The request body as ``model``; 400 with the field and the problem otherwise.

    With ``optional`` an empty body means ``{}``.
    """
    raw = await request.read()
    if not raw.strip():
        if not optional:
            raise json_error(400, "a JSON object body is required")
        raw = b"{}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise json_error(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise json_error(400, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise json_error(400, f"invalid request: {validation_message(exc)}") from None
