"""Console sessions: a signed cookie, never the token.

Sign-in checks the pasted token once (one scrypt hash, ~30 ms). The session cookie then
carries ``party id, expiry, fingerprint of the stored token hash, nonce`` under an
HMAC-SHA256 whose key every api instance shares: 32 random bytes wrapped under the hub KEK
in ``_govhub.keys`` (row ``_hub/console-session``), created by the first instance that
finds none — so any api replica accepts the cookie, and none keeps session state.

Each page reads the party afresh: a rotated token (the fingerprint changes), an expired
token or a suspended party ends every session at once. The CSRF token of a form is an HMAC
of the session cookie under the same key (bound to the session, nothing to store); every
POST must carry it. The cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass

from hub.controlstate import CompactedTable
from hub.crypto.kms import Kms
from hub.crypto.secrets import CONSOLE_SESSION
from hub.gateway.tickets import token_fingerprint

ROW_KEY = CONSOLE_SESSION.row_key
COOKIE = "govhub_session"
LANG_COOKIE = "govhub_lang"
_MAC_LEN = 20
_MAX_COOKIE_LEN = 400
SESSION_HOURS = 8


class SessionError(Exception):
    """A cookie that is malformed, forged, expired, or under a key no longer in use."""


@dataclass(frozen=True, slots=True)
class Session:
    party_id: str
    expires_ms: int
    fingerprint: str
    cookie: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionBook:
    """Issues and checks session cookies and CSRF tokens."""

    def __init__(self, keys: CompactedTable, kms: Kms, hours: float = SESSION_HOURS) -> None:
        self._keys = keys
        self._kms = kms
        self._lifetime_ms = int(hours * 3_600_000)
        self._row: object = None
        self._mac_key = b""
        self._lock = threading.Lock()

    def ensure_key(self) -> None:
        """Create the shared key if the hub has none yet (blocks until written and read)."""
        CONSOLE_SESSION.ensure(self._keys, self._kms)
        self._key()

    def _key(self) -> bytes:
        row = self._keys.get(ROW_KEY)
        if row is None:
            raise SessionError("no session key yet")
        with self._lock:
            if row is not self._row:
                self._mac_key = CONSOLE_SESSION.unwrap_row(row, self._kms)
                self._row = row
            return self._mac_key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key(), payload, hashlib.sha256).digest()[:_MAC_LEN]

    def issue(self, party_id: str, token_hash: str | None, now_ms: int) -> Session:
        expires = now_ms + self._lifetime_ms
        nonce = _b64(os.urandom(9))
        payload = f"1.{party_id}.{expires}.{token_fingerprint(token_hash)}.{nonce}".encode()
        cookie = f"{_b64(payload)}.{_b64(self._mac(payload))}"
        return Session(party_id, expires, token_fingerprint(token_hash), cookie)

    def verify(self, cookie: str, now_ms: int) -> Session:
        if len(cookie) > _MAX_COOKIE_LEN:
            raise SessionError("malformed session")
        body, dot, mac_text = cookie.partition(".")
        try:
            payload, mac = _unb64(body), _unb64(mac_text)
            version, party_id, expires, fingerprint, _nonce = payload.decode().split(".")
            expires_ms = int(expires)
        except (ValueError, UnicodeDecodeError):
            raise SessionError("malformed session") from None
        if not dot or version != "1":
            raise SessionError("malformed session")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise SessionError("session signature does not match")
        if now_ms >= expires_ms:
            raise SessionError("session expired")
        return Session(party_id, expires_ms, fingerprint, cookie)

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac(b"csrf." + session.cookie.encode()))

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token(session))
