"""Authentication of parties: bearer tokens (stored only as scrypt hashes) and, optionally,
an mTLS client certificate subject.

A token issued by the hub names its party (``ghp_<party>.<secret>``), so checking it costs
one slow hash. A verified token is remembered by its SHA-256 (never in clear) together
with the stored hash it matched; every request still reads the party afresh, so a rotated
token (the stored hash changed), an expired token or a suspended party is refused at once.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from hub.parties.model import Party, PartyStatus, hash_token, token_party, verify_token
from hub.state import ControlState

MAX_TOKEN_LEN = 512
_MAX_CACHED = 10_000
V = TypeVar("V")


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _now_ms() -> int:
    return int(time.time() * 1000)


class TokenAuthenticator:
    def __init__(self, state: ControlState, clock: Callable[[], int] = _now_ms) -> None:
        self._state = state
        self._clock = clock
        self._verified: dict[str, tuple[str, str]] = {}  # fingerprint -> (party, hash)
        self._failed: dict[str, int] = {}  # fingerprint -> state generation when it failed
        self._lock = threading.Lock()
        # Parsed parties by id, reused while the table still holds the same row object
        # (a change replaces the row), so a cached token costs no model validation.
        self._parsed: dict[str, tuple[object, Party]] = {}

    def authenticate_cached(self, authorization: str | None) -> Party | None:
        """The party of an already verified token, cheaply enough for the event loop;
        None when the slow path (:meth:`authenticate`) must decide."""
        try:
            token = _bearer(authorization)
        except AuthError:
            return None
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        cached = self._verified.get(fingerprint)
        if cached is None:
            return None
        party_id, token_hash = cached
        row = self._state.parties.get(party_id)
        if row is None:
            return None
        parsed = self._parsed.get(party_id)
        if parsed is None or parsed[0] is not row:
            party = self._state.party(party_id)
            if party is None:
                return None
            self._parsed[party_id] = (row, party)
        else:
            party = parsed[1]
        if party.token_hash is None or not hmac.compare_digest(party.token_hash, token_hash):
            return None
        try:
            return self._admit(party)
        except AuthError:
            return None

    def authenticate(self, authorization: str | None) -> Party:
        token = _bearer(authorization)
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._verified.get(fingerprint)
            failed_at = self._failed.get(fingerprint)
        if cached is not None:
            party = self._state.party(cached[0])
            if party is not None and _same(party.token_hash, cached[1]):
                return self._admit(party)
            with self._lock:
                self._verified.pop(fingerprint, None)
        generation = self._state.generation
        if failed_at == generation:
            raise AuthError(401, "unknown token")
        party = self._find(token)
        if party is None or party.token_hash is None:
            with self._lock:
                _bounded_put(self._failed, fingerprint, generation)
            raise AuthError(401, "unknown token")
        with self._lock:
            _bounded_put(self._verified, fingerprint, (party.id, party.token_hash))
        return self._admit(party)

    def authenticate_certificate(self, subject: str) -> Party:
        """The party registered for a verified client certificate subject."""
        for party in self._state.party_map().values():
            if party.mtls_subject is not None and party.mtls_subject == subject:
                return self._check_status(party)
        raise AuthError(401, f"no party is registered for certificate subject {subject!r}")

    def _find(self, token: str) -> Party | None:
        named = token_party(token)
        if named is not None:
            party = self._state.party(named)
            if party is not None and party.token_hash and verify_token(token, party.token_hash):
                return party
            if party is None or not party.token_hash:
                # The same slow hash as for a known party: the answer's timing must not
                # tell which party ids exist.
                verify_token(token, _dummy_hash())
            return None
        # Tokens that do not name their party (provisioned outside the api) need a scan.
        for party in self._state.party_map().values():
            if party.token_hash and verify_token(token, party.token_hash):
                return party
        return None

    def _admit(self, party: Party) -> Party:
        if party.token_expired(self._clock()):
            assert party.token_expires_at_ms is not None
            when = datetime.datetime.fromtimestamp(party.token_expires_at_ms / 1000, datetime.UTC)
            raise AuthError(
                401, f"token of party {party.id} expired at {when:%Y-%m-%dT%H:%M:%SZ}; rotate it"
            )
        return self._check_status(party)

    @staticmethod
    def _check_status(party: Party) -> Party:
        if party.status is not PartyStatus.ACTIVE:
            raise AuthError(403, f"party {party.id} is {party.status.value}")
        return party


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError(401, "missing bearer token (Authorization: Bearer <token>)")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() == "basic" and token:
        # Stock clients (e.g. Confluent's schema registry client) send HTTP Basic:
        # the user is the party id, the password its token.
        try:
            _, _, token = base64.b64decode(token, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise AuthError(401, "malformed Basic credentials") from None
    elif scheme.lower() != "bearer" or not token:
        raise AuthError(401, "the Authorization header must be 'Bearer <token>'")
    if not token:
        raise AuthError(401, "empty token")
    if len(token) > MAX_TOKEN_LEN:
        raise AuthError(401, "unknown token")
    return token


@functools.cache
def _dummy_hash() -> str:
    return hash_token("govhub-no-such-party")


def _same(stored: str | None, expected: str) -> bool:
    """Constant-time comparison of stored token hashes."""
    return stored is not None and hmac.compare_digest(stored, expected)


def _bounded_put(cache: dict[str, V], key: str, value: V) -> None:
    if len(cache) >= _MAX_CACHED:
        cache.clear()
    cache[key] = value
