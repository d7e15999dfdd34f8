"""Resume tickets: bound to the party's stored token hash, its expiry and the shared key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hub.crypto.kms import LocalFileKms
from hub.gateway.tickets import ROW_KEY, TicketBook, TicketError, token_fingerprint


class KeyRows:
    """The two calls TicketBook makes on the keys table, over a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def put(self, key: str, value: Mapping[str, Any] | None, **_: object) -> None:
        if value is None:
            self.rows.pop(key, None)
        else:
            self.rows[key] = dict(value)


@pytest.fixture
def book(tmp_path: Path) -> TicketBook:
    rows = KeyRows()
    book = TicketBook(rows, LocalFileKms(tmp_path / "kek", create=True))  # type: ignore[arg-type]
    book.ensure_key()
    return book


def test_issue_and_verify(book: TicketBook) -> None:
    ticket = book.issue("yonganli", "scrypt$aa$bb", expires_ms=2_000)
    assert ticket.startswith("ght_")
    assert book.verify(ticket, now_ms=1_000) == ("yonganli", token_fingerprint("scrypt$aa$bb"))
    with pytest.raises(TicketError, match="expired"):
        book.verify(ticket, now_ms=2_000)


def test_forged_or_malformed_tickets_are_refused(book: TicketBook) -> None:
    ticket = book.issue("yonganli", "h", expires_ms=10**15)
    _, mac = ticket[4:].split(".")
    forged = book.issue("jianwai", "h", expires_ms=10**15)
    for bad in (
        "ght_" + forged[4:].split(".")[0] + "." + mac,  # another party's payload
        ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"),
        "ght_",
        "ght_!!!.???",
        "ghp_yonganli.secret",
        "ght_" + "A" * 500,
    ):
        with pytest.raises(TicketError):
            book.verify(bad, now_ms=0)


def test_a_new_shared_key_invalidates_old_tickets(book: TicketBook, tmp_path: Path) -> None:
    ticket = book.issue("yonganli", "h", expires_ms=10**15)
    rows = book._keys
    rows.put(ROW_KEY, None)
    book.ensure_key()  # another key now (as when two gateways raced to create one)
    with pytest.raises(TicketError, match="another key"):
        book.verify(ticket, now_ms=0)


def test_fingerprint_changes_with_the_token_hash() -> None:
    assert token_fingerprint("a") != token_fingerprint("b")
    assert token_fingerprint(None) == token_fingerprint("")


def test_remembered_tickets_still_expire_and_die_with_their_key(book: TicketBook) -> None:
    ticket = book.issue("yonganli", "h", expires_ms=5_000)
    assert book.verify(ticket, now_ms=1_000)[0] == "yonganli"
    assert book.verify(ticket, now_ms=1_001)[0] == "yonganli"  # remembered
    with pytest.raises(TicketError, match="expired"):
        book.verify(ticket, now_ms=5_000)
    # A remembered ticket says nothing about a forged one of the same party.
    with pytest.raises(TicketError):
        book.verify(ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"), now_ms=1_000)
    book._keys.put(ROW_KEY, None)
    book.ensure_key()
    with pytest.raises(TicketError, match="another key"):
        book.verify(ticket, now_ms=1_000)
