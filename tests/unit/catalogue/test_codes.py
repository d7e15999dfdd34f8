"""GB 11643 (身份证号), GB 32100 (统一社会信用代码), GB 11714 and mobile numbers."""

from hypothesis import given
from hypothesis import strategies as st

from hub.catalogue.codes import (
    USCC_ALPHABET,
    id_card_check_char,
    id_card_valid,
    mobile_valid,
    org_code_check_char,
    uscc_check_char,
    uscc_valid,
)

digits17 = st.text(alphabet="0123456789", min_size=17, max_size=17)
uscc17 = st.builds(
    lambda head, region, rest: head + region + rest,
    st.text(alphabet=USCC_ALPHABET, min_size=2, max_size=2),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9),
)


def test_known_codes() -> None:
    assert id_card_valid("11010519491231002X") and id_card_valid("11010519491231002x")
    assert not id_card_valid("110105194912310021")
    assert not id_card_valid("1101051949123100")
    assert not id_card_valid("１１0105194912310021")  # full-width digits are not digits here
    # Published credit codes (Huawei; the GB 32100 example) and one with a wrong check.
    assert uscc_valid("9144030071526726XG")
    assert uscc_valid("91350100M000100Y43")
    assert not uscc_valid("9144030071526726XH")
    assert not uscc_valid("9144030071526726xg")  # the standard prints upper case
    assert not uscc_valid("91440300715267I6XG")  # I is not in the alphabet
    assert not uscc_valid("91A4030071526726XG")  # region part must be digits
    assert not uscc_valid("9144030071526726X")
    assert org_code_check_char("71526726") == "X"
    assert mobile_valid("13800138000") and not mobile_valid("12800138000")
    assert not mobile_valid("1380013800") and not mobile_valid("+8613800138000")


@given(digits17)
def test_id_card_check_char_makes_valid_numbers(first17: str) -> None:
    assert id_card_valid(first17 + id_card_check_char(first17))


@given(digits17, st.integers(0, 17), st.integers(1, 9))
def test_id_card_detects_any_single_digit_change(first17: str, pos: int, delta: int) -> None:
    number = first17 + id_card_check_char(first17)
    if pos == 17:
        wrong = "10X98765432"
        changed = number[:17] + wrong[(wrong.index(number[17]) + delta) % 11]
    else:
        changed = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1 :]
    assert not id_card_valid(changed)


@given(uscc17)
def test_uscc_check_char_makes_valid_codes(first17: str) -> None:
    assert uscc_valid(first17 + uscc_check_char(first17))


@given(uscc17, st.integers(0, 17), st.integers(1, 30))
def test_uscc_detects_any_single_character_change(first17: str, pos: int, delta: int) -> None:
    code = first17 + uscc_check_char(first17)
    replacement = USCC_ALPHABET[(USCC_ALPHABET.index(code[pos]) + delta) % 31]
    changed = code[:pos] + replacement + code[pos + 1 :]
    # MOD 31 with weights prime to 31 catches every single substitution.
    assert not uscc_valid(changed)


@given(st.text(max_size=30))
def test_checks_never_crash(text: str) -> None:
    assert isinstance(id_card_valid(text), bool)
    assert isinstance(uscc_valid(text), bool)
    assert isinstance(mobile_valid(text), bool)
