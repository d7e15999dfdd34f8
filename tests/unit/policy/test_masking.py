import datetime

import pytest
from pydantic import ValidationError

from hub.policy.masking import MaskKind, MaskRule, PseudonymKeys, masker


@pytest.mark.parametrize(
    ("mask", "value", "masked"),
    [
        (MaskKind.ID_CARD, "11010519491231002X", "110105********002X"),
        (MaskKind.NAME, "欧阳娜娜", "欧***"),
        (MaskKind.PHONE, "13812345678", "138****5678"),
        (MaskKind.BANK_CARD, "6222020200112233445", "***************3445"),
        (MaskKind.ADDRESS, "北京市朝阳区建外街道永安里1号", "北京市朝阳区*********"),
        (MaskKind.REDACT, "anything", "******"),
        (MaskRule(kind=MaskKind.KEEP, first=2, last=1), "ABCDEFG", "AB****G"),
        (MaskRule(kind=MaskKind.KEEP, first=0, last=3), "ABCDEFG", "****EFG"),
        (MaskRule(kind=MaskKind.KEEP, first=4, last=4), "ABCDEFG", "*******"),  # too short
        (MaskKind.MONTH, "2026-03-15", "2026-03"),
        (MaskKind.YEAR, "2026-03-15T10:00:00", "2026"),
        (MaskKind.MONTH, "15/03/2026", "**********"),  # not ISO: nothing revealed
    ],
)
def test_each_mask_kind(mask: MaskKind | MaskRule, value: str, masked: str) -> None:
    assert masker(mask)(value) == masked


def test_id_card_mask_keeps_the_format() -> None:
    masked = masker(MaskKind.ID_CARD)("11010519491231002X")
    assert len(masked) == 18 and masked[:6] == "110105" and masked.endswith("002X")


def test_date_generalisation_keeps_the_type() -> None:
    day = datetime.date(2026, 3, 15)
    assert masker(MaskKind.MONTH)(day) == datetime.date(2026, 3, 1)
    assert masker(MaskKind.YEAR)(day) == datetime.date(2026, 1, 1)
    moment = datetime.datetime(2026, 3, 15, 10, 30, tzinfo=datetime.UTC)
    assert masker(MaskKind.MONTH)(moment) == datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    assert masker(MaskKind.YEAR)(None) is None


def test_keep_rule_parameters_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs 'first' or 'last'"):
        MaskRule(kind=MaskKind.KEEP)
    with pytest.raises(ValidationError, match="apply to 'keep' masks only"):
        MaskRule(kind=MaskKind.NAME, first=1)
    with pytest.raises(ValueError, match="first"):
        masker(MaskKind.KEEP)


def test_pseudonyms_join_per_recipient_only() -> None:
    keys = PseudonymKeys(b"r" * 32)
    a, b = keys.for_recipient("jianwai"), keys.for_recipient("chaowai")
    assert a != b and keys.for_recipient("jianwai") == a
    pa, pb = masker(MaskKind.PSEUDONYM, a), masker(MaskKind.PSEUDONYM, b)
    assert pa("110105194912310021") == pa("110105194912310021")  # joins for one recipient
    assert pa("110105194912310021") != pb("110105194912310021")  # not across recipients
    assert "110105" not in pa("110105194912310021")
    assert "rrrr" not in repr(keys)
    with pytest.raises(ValueError, match="pseudonym key"):
        masker(MaskKind.PSEUDONYM)
    with pytest.raises(ValueError, match="32 bytes"):
        PseudonymKeys(b"short")
