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
