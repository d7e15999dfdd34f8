"""Data-quality rules where records enter: one test per rule, and what details reveal."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from hub.catalogue.binding import bind_schema
from hub.catalogue.known_regions import RegionDirectory
from hub.catalogue.model import Resource
from hub.catalogue.quality import (
    CST,
    QUALITY_REASONS,
    check_record,
    compile_checker,
    redact_personal,
)
from hub.parties.model import Party, PartyKind
from tests.unit.catalogue.conftest import SCHEMA, entry, with_field

RESOURCE = bind_schema(entry(), SCHEMA)
GOOD: dict[str, Any] = {
    "id": "T0001",
    "region_code": "110105001001",
    "holder_id_card": "11010519491231002X",
    "holder_name": "张三",
    "size": 3,
    "amount": "12.50",
    "issued_on": "2020-05-01",
    "seen_at": "2026-01-01T08:00:00+08:00",
    "kind": "A",
    "org": "9144030071526726XG",
}


def reason(record: dict[str, Any], resource: Resource = RESOURCE, **kw: Any) -> str | None:
    violation = check_record(resource, record, **kw)
    return None if violation is None else violation.reason


def variant(name: str, **changes: Any) -> Resource:
    return bind_schema(entry(fields=with_field(name, **changes)), SCHEMA)


def test_a_good_record_passes() -> None:
    assert check_record(RESOURCE, GOOD) is None
    assert check_record(RESOURCE, {**GOOD, "holder_name": None, "org": None}) is None


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_required_fields(empty: Any) -> None:
    violation = check_record(RESOURCE, {**GOOD, "size": empty})
    assert violation is not None and violation.reason == "missing-field"
    assert violation.detail == "required field 'size' is empty"
    missing = dict(GOOD)
    del missing["id"]
    assert reason(missing) == "missing-field"


def test_region_codes_well_formed_and_known() -> None:
    assert reason({**GOOD, "region_code": "11010500100X"}) == "invalid-region"
    assert reason({**GOOD, "region_code": "110105000001"}) == "invalid-region"  # level gap
    known = RegionDirectory(["110105000000", "110105001000", "110105001001"])
    assert reason(GOOD, regions=known) is None
    violation = check_record(RESOURCE, {**GOOD, "region_code": "110105001009"}, regions=known)
    assert violation is not None and violation.reason == "unknown-region"
    assert "110105001009" in violation.detail


def test_region_directory_from_parties_and_reference_list(tmp_path: Any) -> None:
    party = Party(id="yonganli", name="永安里社区", kind=PartyKind.UNIT, region_code="110105001001")
    from_parties = RegionDirectory.from_parties([party])
    assert "110105001001" in from_parties and from_parties.name("110105001001") == "永安里社区"
    listing = tmp_path / "regions.txt"
    listing.write_text("# 朝阳区\n110105000000,朝阳区\n110105002001  # 吉祥里\n", encoding="utf-8")
    merged = RegionDirectory.from_file(listing).union(from_parties)
    assert set(merged) == {"110105000000", "110105002001", "110105001001"}
    listing.write_text("1101050\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"regions\.txt:1"):
        RegionDirectory.from_file(listing)


def test_id_card_checksum_without_echoing_the_number() -> None:
    violation = check_record(RESOURCE, {**GOOD, "holder_id_card": "110105194912310021"})
    assert violation is not None and violation.reason == "invalid-id-card"
    assert "1101" not in violation.detail and "0021" not in violation.detail


def test_pattern_and_code_list_and_length() -> None:
    violation = check_record(RESOURCE, {**GOOD, "id": "X0001"})
    assert violation is not None and violation.reason == "pattern-mismatch"
    assert "X0001" in violation.detail  # not personal: shown to help the sender
    listed = variant("id", rules={"allowed": ["T0001", "T0002"]})
    assert reason({**GOOD, "id": "T0002"}, listed) is None
    assert reason({**GOOD, "id": "T0003"}, listed) == "not-in-code-list"
    short = variant("id", rules={"max_length": 3})
    assert reason(GOOD, short) == "too-long"


def test_value_ranges() -> None:
    assert reason({**GOOD, "size": 0}) == "out-of-range"
    assert reason({**GOOD, "size": 11}) == "out-of-range"
    assert reason({**GOOD, "size": 10}) is None
    assert reason({**GOOD, "amount": "999.99"}) is None
    assert reason({**GOOD, "amount": 1000}) == "out-of-range"
    assert reason({**GOOD, "amount": "-0.01"}) == "out-of-range"
    for bad in ("12.5x", True, float("nan"), "Infinity", [1]):
        assert reason({**GOOD, "amount": bad}) == "not-a-number", bad


def test_dates() -> None:
    while True:  # "today" in China, taken again if midnight there passed during the checks
        today = datetime.datetime.now(CST).date()
        tomorrow = today + datetime.timedelta(days=1)
        answers = (
            reason({**GOOD, "issued_on": today.isoformat()}),
            reason({**GOOD, "issued_on": tomorrow.isoformat()}),
            reason({**GOOD, "issued_on": tomorrow}),
        )
        if datetime.datetime.now(CST).date() == today:
            break
    assert answers == (None, "future-date", "future-date")
    assert reason({**GOOD, "issued_on": "1999-12-31"}) == "date-too-early"
    assert reason({**GOOD, "issued_on": "2020-02-30"}) == "invalid-date"
    assert reason({**GOOD, "issued_on": 18_262}) is None  # epoch days: 2020-01-01
    assert reason({**GOOD, "issued_on": 10_000}) == "date-too-early"  # 1997-05-19


def test_timestamps_allow_clock_skew_only() -> None:
    now = datetime.datetime.now(datetime.UTC)
    assert reason({**GOOD, "seen_at": (now + datetime.timedelta(minutes=1)).isoformat()}) is None
    later = now + datetime.timedelta(hours=1)
    assert reason({**GOOD, "seen_at": later.isoformat()}) == "future-date"
    assert reason({**GOOD, "seen_at": int(later.timestamp() * 1000)}) == "future-date"
    assert reason({**GOOD, "seen_at": int(now.timestamp() * 1000)}) is None
    assert reason({**GOOD, "seen_at": "yesterday"}) == "invalid-date"


def test_formats() -> None:
    assert reason({**GOOD, "org": "9144030071526726XH"}) == "invalid-uscc"
    phone = variant("holder_name", personal="phone", rules={"format": "mobile"})
    violation = check_record(phone, {**GOOD, "holder_name": "1380013800"})
    assert violation is not None and violation.reason == "invalid-mobile"
    assert "1380013800" not in violation.detail
    region = variant("org", rules={"format": "region_code"})
    assert reason({**GOOD, "org": "110105001001"}, region) is None
    assert reason({**GOOD, "org": "1101"}, region) == "invalid-region"


def test_compiled_once_per_resource_and_counted() -> None:
    assert compile_checker(RESOURCE) is compile_checker(RESOURCE)
    labels = {"resource": "thing", "rule": "out-of-range"}
    before = REGISTRY.get_sample_value("govhub_quality_violations_total", labels) or 0.0
    check_record(RESOURCE, {**GOOD, "size": 99})
    assert REGISTRY.get_sample_value("govhub_quality_violations_total", labels) == before + 1


def test_redaction_masks_every_personal_field() -> None:
    out = redact_personal(RESOURCE, GOOD)
    assert out["holder_id_card"] == "110105********002X" and out["holder_name"] == "张*"
    assert out["id"] == "T0001"


secret = st.text(alphabet="0123456789X", min_size=8, max_size=20)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.dates().map(str),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300)
@given(
    # Mostly good values, so that the checks behind the region and required fields run too.
    st.fixed_dictionaries(
        {n: st.one_of(st.just(v), st.just(v), anything) for n, v in GOOD.items()}
    ),
    st.fixed_dictionaries({"holder_id_card": secret, "holder_name": secret}),
)
def test_any_input_gives_a_known_reason_and_never_leaks(
    values: dict[str, Any], personal: dict[str, str]
) -> None:
    record = {**values, **personal}
    # A detail may show a non-personal value; the same text in a personal field is no leak.
    shown = {str(v) for k, v in values.items() if k not in personal}
    assume(not any(p in s for p in personal.values() for s in shown))
    violation = check_record(RESOURCE, record)
    if violation is not None:
        assert violation.reason in QUALITY_REASONS
        assert personal["holder_id_card"] not in violation.detail
        assert personal["holder_name"] not in violation.detail
