"""Masking (脱敏) of personal data.

Each masking kind is a pure function from a field value to its masked form; a view
compiles the kinds it needs once and applies them per record. Masked values keep their
Avro type: a masked string is still a string, a generalised ``date`` is still a date (the
first day of its month or year), a redacted nullable field becomes null.

A policy names a mask per field either by kind (``"id_card"``) or, for kinds that take
parameters, as a :class:`MaskRule` (``{"kind": "keep", "first": 3, "last": 4}``).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, model_validator

MASK_CHAR = "*"
PSEUDONYM_LEN = 24  # hex characters: 96 bits, ample for joins, no use for brute force


class MaskKind(StrEnum):
    """How a field is masked. The names appear in subscription policies."""

    ID_CARD = "id_card"  # 身份证号: same length, keeps region of issue (6) and last 4
    NAME = "name"  # 姓名: keep the surname (first character)
    PHONE = "phone"  # 手机号: keep first 3 and last 4
    ADDRESS = "address"  # 地址: keep the first 6 characters (province/city/district)
    BANK_CARD = "bank_card"  # 银行卡号: keep last 4
    REDACT = "redact"  # replace the whole value (null for nullable non-strings)
    PSEUDONYM = "pseudonym"  # keyed hash per recipient: joinable, not reversible
    KEEP = "keep"  # keep the first/last n characters (a MaskRule says how many)
    MONTH = "month"  # generalise a date to its month (the first day of it)
    YEAR = "year"  # generalise a date to its year (1 January)


STRING_KINDS = frozenset(
    {
        MaskKind.ID_CARD,
        MaskKind.NAME,
        MaskKind.PHONE,
        MaskKind.ADDRESS,
        MaskKind.BANK_CARD,
        MaskKind.PSEUDONYM,
        MaskKind.KEEP,
    }
)
DATE_KINDS = frozenset({MaskKind.MONTH, MaskKind.YEAR})


class MaskRule(BaseModel):
    """A mask with parameters; ``first``/``last`` apply to :attr:`MaskKind.KEEP` only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: MaskKind
    first: int = Field(default=0, ge=0, le=64, description="characters kept at the start")
    last: int = Field(default=0, ge=0, le=64, description="characters kept at the end")

    @model_validator(mode="after")
    def _parameters(self) -> MaskRule:
        if self.kind is MaskKind.KEEP:
            if self.first + self.last == 0:
                raise ValueError("a 'keep' mask needs 'first' or 'last' greater than 0")
        elif self.first or self.last:
            raise ValueError(f"'first'/'last' apply to 'keep' masks only, not {self.kind.value!r}")
        return self


Mask: TypeAlias = MaskKind | MaskRule
"""What a policy says about one field."""


def mask_kind(mask: Mask) -> MaskKind:
    return mask.kind if isinstance(mask, MaskRule) else mask


def _keep(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        # Too short to keep anything without revealing it all.
        return MASK_CHAR * len(value)
    return value[:head] + MASK_CHAR * (len(value) - head - tail) + (value[-tail:] if tail else "")


def mask_id_card(value: str) -> str:
    return _keep(value, 6, 4)


def mask_name(value: str) -> str:
    if len(value) <= 1:
        return MASK_CHAR * len(value)
    return value[0] + MASK_CHAR * (len(value) - 1)


def mask_phone(value: str) -> str:
    return _keep(value, 3, 4)


def mask_address(value: str) -> str:
    return _keep(value, 6, 0)


def mask_bank_card(value: str) -> str:
    return _keep(value, 0, 4)


def mask_redact(value: str) -> str:
    return MASK_CHAR * 6


def pseudonymiser(secret: bytes) -> Callable[[str], str]:
    """A keyed pseudonym: the same input gives the same token for one secret."""

    def pseudonym(value: str) -> str:
        return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_LEN]

    return pseudonym


_ISO_MONTH = re.compile(r"^(\d{4})-(\d{2})")


def generalise_date(value: Any, to_year: bool) -> Any:
    """A date, timestamp or ISO string cut down to its month or year, type preserved."""
    if isinstance(value, datetime.datetime):
        month = 1 if to_year else value.month
        return value.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)
    if isinstance(value, datetime.date):
        return value.replace(month=1 if to_year else value.month, day=1)
    text = str(value)
    found = _ISO_MONTH.match(text)
    if found is None:
        return MASK_CHAR * len(text)  # not a date: reveal nothing
    return found.group(1) if to_year else found.group(0)


_STRING_MASKS: dict[MaskKind, Callable[[str], str]] = {
    MaskKind.ID_CARD: mask_id_card,
    MaskKind.NAME: mask_name,
    MaskKind.PHONE: mask_phone,
    MaskKind.ADDRESS: mask_address,
    MaskKind.BANK_CARD: mask_bank_card,
    MaskKind.REDACT: mask_redact,
}


def masker(mask: Mask, secret: bytes = b"") -> Callable[[Any], Any]:
    """The compiled masking function for ``mask``; ``None`` stays ``None``.

    String kinds turn a non-string value into its string form first; the view compiler
    allows them on string fields only, so the Avro type never changes.
    """
    kind = mask_kind(mask)
    if kind in DATE_KINDS:
        to_year = kind is MaskKind.YEAR

        def generalise(value: Any) -> Any:
            return None if value is None else generalise_date(value, to_year)

        return generalise
    if kind is MaskKind.PSEUDONYM:
        if not secret:
            raise ValueError("a pseudonym mask needs the recipient's pseudonym key")
        fn = pseudonymiser(secret)
    elif kind is MaskKind.KEEP:
        if not isinstance(mask, MaskRule):
            raise ValueError("a 'keep' mask needs 'first'/'last' (use a mask rule object)")
        head, tail = mask.first, mask.last

        def fn(value: str) -> str:
            return _keep(value, head, tail)
    else:
        fn = _STRING_MASKS[kind]

    def apply(value: Any) -> Any:
        if value is None:
            return None
        return fn(value if isinstance(value, str) else str(value))

    return apply


class PseudonymKeys:
    """Per-recipient pseudonym keys derived from one hub secret (HKDF-SHA256).

    Each recipient gets its own key, so its pseudonyms join across its own records and
    resources but cannot be matched against another recipient's. The hub secret never
    leaves the hub; see ``hub/subscriptions/pseudonyms.py`` for where it is kept.
    """

    _INFO = b"govhub pseudonym v1\x00"

    def __init__(self, root: bytes) -> None:
        if len(root) < 32:
            raise ValueError("the pseudonym root secret must be at least 32 bytes")
        self._root = root
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "PseudonymKeys(<secret>)"

    def for_recipient(self, recipient: str) -> bytes:
        with self._lock:
            key = self._cache.get(recipient)
        if key is None:
            key = HKDF(hashes.SHA256(), 32, salt=None, info=self._INFO + recipient.encode()).derive(
                self._root
            )
            with self._lock:
                self._cache[recipient] = key
        return key
