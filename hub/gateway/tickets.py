"""Resume tickets: a cheap proof, issued by any gateway, that a subscriber authenticated.

Checking a bearer token costs a deliberately slow scrypt hash. A gateway restart or a
rebalance makes every subscriber reconnect at once, and a redirect sends it to an instance
that has never seen its token; without tickets, thousands of reconnects would each pay the
slow hash again. So each stream's ``welcome`` event carries a ticket — an HMAC-SHA256 over
the party id, an expiry and a fingerprint of the party's stored token hash — that the SDK
presents on its next connect (``Authorization: Bearer ght_...``).

* All gateways share the MAC key: 32 random bytes wrapped under the hub KEK in
  ``_govhub.keys`` (row ``_hub/gateway-ticket``), created by the first gateway that finds
  none. If two create one at once, the later write wins; tickets under the other key are
  refused and the SDK falls back to its token — never an error for the subscriber.
* Rotating the party's token changes the fingerprint: every ticket of the old token fails.
  Suspension, expiry and revocation are checked on every connect as for tokens.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import threading

from hub.controlstate import CompactedTable
from hub.crypto.kms import Kms
from hub.crypto.secrets import GATEWAY_TICKET

TICKET_PREFIX = "ght_"
ROW_KEY = GATEWAY_TICKET.row_key
_MAC_LEN = 16
_MAX_TICKET_LEN = 400
VERIFIED_CACHE_SIZE = 65_536
"""Tickets found valid are remembered (per MAC key) up to this many, then forgotten all at
once: a long-poll subscriber presents its ticket on every request, a few times a second
under load, and the check (two base64 decodes and an HMAC) was a fifth of a request."""


class TicketError(Exception):
    """A ticket that is malformed, forged, expired or under an unknown key."""


@functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def token_fingerprint(token_hash: str | None) -> str:
    """A short digest of the party's stored token hash (never of the token itself)."""
    return hashlib.sha256((token_hash or "").encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TicketBook:
    """Issues and checks tickets under the key kept in the hub's keys table."""

    def __init__(self, keys: CompactedTable, kms: Kms) -> None:
        self._keys = keys
        self._kms = kms
        self._row: object = None
        self._mac_key = b""
        self._kid = ""
        self._lock = threading.Lock()
        # ticket -> (party id, fingerprint, expiry, kid) of tickets found valid
        self._verified: dict[str, tuple[str, str, int, str]] = {}

    def ensure_key(self) -> None:
        """Create the shared key if the hub has none yet (blocks until written)."""
        GATEWAY_TICKET.ensure(self._keys, self._kms)
        self._current()

    def _current(self) -> tuple[bytes, str]:
        row = self._keys.get(ROW_KEY)
        if row is None:
            raise TicketError("no ticket key yet")
        with self._lock:
            if row is not self._row:
                self._mac_key = GATEWAY_TICKET.unwrap_row(row, self._kms)
                # Named by the key itself, not its wrapping: a KEK rotation that rewraps
                # the key leaves tickets valid.
                self._kid = hashlib.sha256(b"govhub ticket kid|" + self._mac_key).hexdigest()[:8]
                self._row = row
            return self._mac_key, self._kid

    def issue(self, party_id: str, token_hash: str | None, expires_ms: int) -> str:
        key, kid = self._current()
        payload = f"1.{party_id}.{expires_ms}.{token_fingerprint(token_hash)}.{kid}".encode()
        mac = hmac.digest(key, payload, "sha256")[:_MAC_LEN]
        return f"{TICKET_PREFIX}{_b64(payload)}.{_b64(mac)}"

    def verify(self, ticket: str, now_ms: int) -> tuple[str, str]:
        """(party id, token fingerprint) of a valid ticket; TicketError otherwise."""
        key, current_kid = self._current()
        known = self._verified.get(ticket)
        if known is not None and known[3] == current_kid:
            party_id, fingerprint, expires_ms, _ = known
        else:
            party_id, fingerprint, expires_ms = self._check(ticket, key, current_kid)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[ticket] = (party_id, fingerprint, expires_ms, current_kid)
        if now_ms >= expires_ms:
            raise TicketError("ticket expired; authenticate with the token")
        return party_id, fingerprint

    @staticmethod
    def _check(ticket: str, key: bytes, current_kid: str) -> tuple[str, str, int]:
        if not ticket.startswith(TICKET_PREFIX) or len(ticket) > _MAX_TICKET_LEN:
            raise TicketError("not a gateway ticket")
        body, dot, mac_text = ticket[len(TICKET_PREFIX) :].partition(".")
        try:
            payload = _unb64(body)
            mac = _unb64(mac_text)
            version, party_id, expires, fingerprint, kid = payload.decode().split(".")
            expires_ms = int(expires)
        except (ValueError, UnicodeDecodeError):
            raise TicketError("malformed ticket") from None
        if not dot or version != "1":
            raise TicketError("malformed ticket")
        if kid != current_kid:
            raise TicketError("ticket was issued under another key; authenticate with the token")
        expected = hmac.digest(key, payload, "sha256")[:_MAC_LEN]
        if not hmac.compare_digest(mac, expected):
            raise TicketError("ticket signature does not match")
        return party_id, fingerprint, expires_ms
