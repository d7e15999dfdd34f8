from hub.catalogue.quality import check_record, id_card_check_char, id_card_valid, redact_personal
from hub.catalogue.samples import load_sample

RESOURCE = load_sample("mzj.dibao").resource
GOOD = {
    "id_card": "11010519491231002X",
    "name": "张三",
    "region_code": "110105001001",
    "household_size": 2,
    "amount": "1.00",
    "approved_on": "2026-01-01",
    "category": "URBAN",
}


def test_gb11643_checksum() -> None:
    assert id_card_valid("11010519491231002X")
    assert id_card_valid("11010519491231002x")
    assert not id_card_valid("110105194912310021")
    assert not id_card_valid("1101051949123100")
    assert id_card_check_char("11010519491231002") == "X"


def test_rules() -> None:
    assert check_record(RESOURCE, GOOD) is None
    v = check_record(RESOURCE, {**GOOD, "region_code": "11010500100X"})
    assert v is not None and v.reason == "invalid-region"
    v = check_record(RESOURCE, {**GOOD, "name": ""})
    assert v is not None and v.reason == "missing-field" and "name" in v.detail
    v = check_record(RESOURCE, {**GOOD, "id_card": "110105194912310021"})
    assert v is not None and v.reason == "invalid-id-card" and "1101051949" not in v.detail


def test_redaction_masks_every_personal_field() -> None:
    out = redact_personal(RESOURCE, {**GOOD, "address": "北京市朝阳区建外街道1号"})
    assert out["id_card"] == "110105********002X" and out["name"] == "张*"
    assert out["address"].startswith("北京市朝阳区*") and out["region_code"] == "110105001001"


def test_a_moment_past_the_representable_years_is_an_invalid_date_not_a_crash() -> None:
    from hub.catalogue.binding import bind_schema
    from tests.unit.catalogue.conftest import SCHEMA, entry, with_field

    # Its day in China Standard Time would fall in the year 10000.
    edge = "9999-12-31T23:00:00-08:00"
    resource = bind_schema(
        entry(fields=with_field("seen_at", rules={"not_before": "2000-01-01"})), SCHEMA
    )
    record = {
        "id": "T0001",
        "region_code": "110105001001",
        "holder_id_card": "11010519491231002X",
        "size": 3,
        "amount": "12.50",
        "issued_on": "2020-05-01",
        "seen_at": edge,
        "kind": "A",
    }
    assert check_record(resource, {**record, "seen_at": "2026-01-01T08:00:00+08:00"}) is None
    violation = check_record(resource, record)
    assert violation is not None and violation.reason == "invalid-date"
