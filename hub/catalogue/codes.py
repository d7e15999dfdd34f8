"""Check characters of national identifier codes.

- 公民身份号码 citizen identity number, GB 11643: 17 digits and an ISO 7064 MOD 11-2 check
  character (``0``-``9`` or ``X``).
- 统一社会信用代码 unified social credit code, GB 32100: 18 characters from a 31-character
  alphabet (no I, O, S, V, Z) — registration authority, entity kind, 6-digit region code,
  9-character organisation code (GB 11714) and a MOD 31 check character.
- 组织机构代码 organisation code, GB 11714: 8 characters and a MOD 11 check character.
"""

from __future__ import annotations

import re

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_VALUE = {c: i for i, c in enumerate(_ORG_ALPHABET)}
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def id_card_check_char(first17: str) -> str:
    """The GB 11643 check character of 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def id_card_valid(value: str) -> bool:
    """A GB 11643 citizen identity number: 17 digits and a valid check character."""
    if len(value) != 18 or not value[:17].isascii() or not value[:17].isdigit():
        return False
    return id_card_check_char(value[:17]) == value[17].upper()


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character of the first 17 characters of a credit code."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_valid(value: str) -> bool:
    """A GB 32100 unified social credit code: alphabet, region digits and check character.

    Upper case only, as the standard prints it; the organisation-code part is not checked
    separately (codes of some entity kinds do not carry a GB 11714 check there).
    """
    if len(value) != 18 or any(c not in _USCC_VALUE for c in value):
        return False
    if not value[2:8].isdigit():
        return False
    return uscc_check_char(value[:17]) == value[17]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character of an 8-character organisation code body."""
    total = sum(_ORG_VALUE[c] * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def mobile_valid(value: str) -> bool:
    """A mainland mobile number: 11 digits starting 13-19."""
    return _MOBILE.fullmatch(value) is not None
