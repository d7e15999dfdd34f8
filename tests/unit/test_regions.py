import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.regions import (
    InvalidRegionCode,
    Jurisdiction,
    Level,
    PrefixIndex,
    is_within,
    jurisdiction_prefix,
    level_of,
    record_prefixes,
    validate_region_code,
)


@pytest.mark.parametrize(
    ("code", "level", "prefix"),
    [
        ("110000000000", Level.PROVINCE, "11"),
        ("110100000000", Level.CITY, "1101"),
        ("110105000000", Level.COUNTY, "110105"),
        ("110105001000", Level.TOWNSHIP, "110105001"),
        ("110105001001", Level.VILLAGE, "110105001001"),
    ],
)
def test_levels_and_prefixes(code: str, level: Level, prefix: str) -> None:
    assert level_of(code) is level
    assert jurisdiction_prefix(code) == prefix
    assert Jurisdiction.of(code).level is level


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "11010500100",
        "1101050010011",
        "11010500100X",
        "000000000000",
        "110000001000",
        "110105000001",
        "１１０１０５００１００１",
    ],
)
def test_invalid_codes_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidRegionCode):
        validate_region_code(bad)


def test_record_prefixes_lists_every_level_of_the_record() -> None:
    assert record_prefixes("110105001001") == ("11", "1101", "110105", "110105001", "110105001001")
    assert record_prefixes("110105001000") == ("11", "1101", "110105", "110105001")


def test_is_within() -> None:
    assert is_within("110105001001", "110105001000")
    assert is_within("110105001001", "110105000000")
    assert not is_within("110105002001", "110105001000")
    assert not is_within("110105001000", "110105001001")  # the street is not in the community


def test_prefix_index_matches_each_level_once() -> None:
    index: PrefixIndex[str] = PrefixIndex()
    index.add(Jurisdiction.of("110105000000"), "district")
    index.add(Jurisdiction.of("110105001000"), "street-1")
    index.add(Jurisdiction.of("110105002000"), "street-2")
    index.add(Jurisdiction.of("110105001001"), "community-1-1")
    index.add(Jurisdiction.of("110105001002"), "community-1-2")
    assert list(index.match("110105001001")) == ["district", "street-1", "community-1-1"]
    assert list(index.match("110105002001")) == ["district", "street-2"]
    assert list(index.match("120105001001")) == []
    assert len(index) == 5


def test_prefix_index_cost_does_not_depend_on_subscribers() -> None:
    index: PrefixIndex[int] = PrefixIndex()
    for i in range(1, 1000):
        index.add(Jurisdiction.of(f"110105{i:03d}000"), i)
    # Only the record's own street matches among 999 streets.
    assert list(index.match("110105517003")) == [517]


codes = st.from_regex(r"[1-6][0-9]{11}", fullmatch=True)


@given(codes, codes)
def test_index_agrees_with_is_within(record: str, scope: str) -> None:
    try:
        validate_region_code(record)
        validate_region_code(scope)
    except InvalidRegionCode:
        return
    index: PrefixIndex[str] = PrefixIndex([(Jurisdiction.of(scope), "s")])
    assert (list(index.match(record)) == ["s"]) == is_within(record, scope)
