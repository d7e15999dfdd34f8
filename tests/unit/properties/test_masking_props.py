"""Masking: every mask keeps only what it promises, for any string; None stays None."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.policy.masking import MASK_CHAR, PSEUDONYM_LEN, MaskKind, MaskRule, masker

from .conftest import PROPS

KEEPS = {
    MaskKind.ID_CARD: (6, 4),
    MaskKind.PHONE: (3, 4),
    MaskKind.ADDRESS: (6, 0),
    MaskKind.BANK_CARD: (0, 4),
}


@settings(PROPS)
@given(st.sampled_from(sorted(KEEPS)), st.text(max_size=40))
def test_keep_masks_reveal_only_their_ends(kind: MaskKind, value: str) -> None:
    head, tail = KEEPS[kind]
    out = masker(kind)(value)
    assert len(out) == len(value)
    if len(value) <= head + tail:
        assert out == MASK_CHAR * len(value)
    else:
        assert out[:head] == value[:head]
        assert out[len(out) - tail :] == (value[-tail:] if tail else "")
        assert set(out[head : len(out) - tail]) == {MASK_CHAR}


@settings(PROPS)
@given(st.text(max_size=20), st.integers(0, 64), st.integers(0, 64))
def test_keep_rule_and_name(value: str, first: int, last: int) -> None:
    name = masker(MaskKind.NAME)(value)
    assert len(name) == len(value) and name[1:] == MASK_CHAR * (len(value) - 1)
    if first + last:
        out = masker(MaskRule(kind=MaskKind.KEEP, first=first, last=last))(value)
        assert len(out) == len(value)
        assert out.count(MASK_CHAR) >= max(0, len(value) - first - last) or not value


@settings(PROPS)
@given(st.text(max_size=30), st.binary(min_size=1, max_size=32))
def test_redact_and_pseudonym(value: str, key: bytes) -> None:
    assert masker(MaskKind.REDACT)(value) == MASK_CHAR * 6
    pseudo = masker(MaskKind.PSEUDONYM, key)
    out = pseudo(value)
    assert len(out) == PSEUDONYM_LEN and out == pseudo(value)
    assert all(masker(k, key)(None) is None for k in MaskKind if k is not MaskKind.KEEP)
