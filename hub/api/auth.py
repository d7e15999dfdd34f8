"""Token authentication of parties (tokens are stored only as scrypt hashes)."""

from __future__ import annotations

import hashlib
import threading

from hub.parties.model import Party, PartyStatus, verify_token
from hub.state import ControlState


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TokenAuthenticator:
    """Checks bearer tokens; a verified token is remembered by its SHA-256 (never in clear)
    for as long as the party's stored hash is unchanged, so the slow hash runs once."""

    def __init__(self, state: ControlState) -> None:
        self._state = state
        self._verified: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Party:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError(401, "missing bearer token")
        token = authorization[len("Bearer ") :].strip()
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._verified.get(fingerprint)
        if cached is not None:
            party = self._state.party(cached[0])
            if party is not None and party.token_hash == cached[1]:
                return self._check_active(party)
        for party in self._state.party_map().values():
            if party.token_hash and verify_token(token, party.token_hash):
                with self._lock:
                    self._verified[fingerprint] = (party.id, party.token_hash)
                return self._check_active(party)
        raise AuthError(401, "unknown token")

    @staticmethod
    def _check_active(party: Party) -> Party:
        if party.status is not PartyStatus.ACTIVE:
            raise AuthError(403, f"party {party.id} is {party.status.value}")
        return party
