"""Masking (脱敏) of personal data.

Each masking kind is a pure function from a field value to its masked form; a view
compiles the kinds it needs once and applies them per record. Masked values keep their
type (a masked string is still a string), so the view's Avro schema need not change.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from enum import StrEnum
from typing import Any

MASK_CHAR = "*"


class MaskKind(StrEnum):
    """How a field is masked. The names appear in subscription policies."""

    ID_CARD = "id_card"  # 身份证号: keep region of issue (6) and last 4
    NAME = "name"  # 姓名: keep the surname (first character)
    PHONE = "phone"  # 手机号: keep first 3 and last 4
    ADDRESS = "address"  # 地址: keep the first 6 characters (province/city/district)
    BANK_CARD = "bank_card"  # 银行卡号: keep last 4
    REDACT = "redact"  # replace the whole value
    PSEUDONYM = "pseudonym"  # keyed hash: joinable across records, not reversible


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
        return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:24]

    return pseudonym


_STRING_MASKS: dict[MaskKind, Callable[[str], str]] = {
    MaskKind.ID_CARD: mask_id_card,
    MaskKind.NAME: mask_name,
    MaskKind.PHONE: mask_phone,
    MaskKind.ADDRESS: mask_address,
    MaskKind.BANK_CARD: mask_bank_card,
    MaskKind.REDACT: mask_redact,
}


def masker(kind: MaskKind, secret: bytes = b"") -> Callable[[Any], Any]:
    """The compiled masking function for ``kind``; ``None`` stays ``None``.

    Non-string values are turned into strings before masking only by REDACT/PSEUDONYM
    callers that declare string output; other kinds leave non-strings to the view compiler,
    which refuses to mask a non-string field with a string mask.
    """
    fn = pseudonymiser(secret) if kind is MaskKind.PSEUDONYM else _STRING_MASKS[kind]

    def apply(value: Any) -> Any:
        if value is None:
            return None
        return fn(value if isinstance(value, str) else str(value))

    return apply
