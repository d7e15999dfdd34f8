import datetime
import decimal

import orjson
import pytest

from hub.catalogue.samples import load_sample
from hub.policy.masking import MaskKind, MaskRule, masker
from hub.policy.predicates import Op, Predicate
from hub.policy.views import View, ViewError, compile_view
from hub.registry.schemas import AvroCodec


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        (MaskKind.ID_CARD, "11010519491231002X", "110105********002X"),
        (MaskKind.NAME, "张三", "张*"),
        (MaskKind.NAME, "欧阳娜娜", "欧***"),
        (MaskKind.NAME, "张", "*"),
        (MaskKind.PHONE, "13812345678", "138****5678"),
        (MaskKind.BANK_CARD, "6222020200112233445", "***************3445"),
        (MaskKind.ADDRESS, "北京市朝阳区建外街道永安里1号", "北京市朝阳区*********"),
        (MaskKind.REDACT, "anything", "******"),
        (MaskKind.ID_CARD, "123", "***"),
    ],
)
def test_mask_kinds(kind: MaskKind, value: str, masked: str) -> None:
    assert masker(kind)(value) == masked


def test_none_stays_none_and_pseudonym_is_stable() -> None:
    assert masker(MaskKind.NAME)(None) is None
    pseudo = masker(MaskKind.PSEUDONYM, b"secret")
    assert pseudo("张三") == pseudo("张三") != pseudo("李四")
    assert masker(MaskKind.PSEUDONYM, b"other")("张三") != pseudo("张三")


RECORD = {
    "id_card": "11010519491231002X",
    "name": "张三",
    "region_code": "110105001001",
    "household_size": 3,
    "amount": decimal.Decimal("1245.50"),
    "approved_on": datetime.date(2026, 1, 2),
    "category": "URBAN",
    "address": None,
}


def test_view_masks_and_projects_with_its_own_schema() -> None:
    sample = load_sample("mzj.dibao")
    view = View.of(("name", "region_code", "amount"), {"name": MaskKind.NAME})
    compiled = compile_view(view, sample.schema_json)
    out = compiled.apply(RECORD)
    assert out == {"name": "张*", "region_code": "110105001001", "amount": RECORD["amount"]}
    codec = AvroCodec(compiled.schema_json)
    assert codec.field_names == ("name", "region_code", "amount")
    assert codec.decode(codec.encode(out)) == out


def test_identity_view_keeps_schema() -> None:
    sample = load_sample("mzj.dibao")
    assert View().is_identity
    compiled = compile_view(View(), sample.schema_json)
    assert compiled.apply(RECORD) == RECORD


def test_view_errors_are_found_at_compile_time() -> None:
    sample = load_sample("mzj.dibao")
    with pytest.raises(ViewError, match="does not have"):
        compile_view(View.of(("nope",), {}), sample.schema_json)
    with pytest.raises(ViewError, match="not a string"):
        compile_view(View.of(None, {"household_size": MaskKind.REDACT}), sample.schema_json)
    # Masking a nullable string is fine; null stays null.
    compiled = compile_view(View.of(None, {"address": MaskKind.ADDRESS}), sample.schema_json)
    assert compiled.apply(RECORD)["address"] is None


def test_view_filters_rows_and_passes_them_through_unchanged() -> None:
    sample = load_sample("mzj.dibao")
    view = View.of(None, {}, (Predicate(field="household_size", op=Op.GE, value=3),))
    assert not view.is_identity  # the record must be decoded to test it
    compiled = compile_view(view, sample.schema_json)
    assert compiled.accepts(RECORD)
    assert not compiled.accepts({**RECORD, "household_size": 2})
    assert not compiled.reshapes and compiled.apply(RECORD) == RECORD
    assert compile_view(View(), sample.schema_json).accepts(RECORD)


def test_every_mask_kind_keeps_the_view_schema_valid() -> None:
    sample = load_sample("mzj.dibao")
    masking = {
        "id_card": MaskKind.PSEUDONYM,
        "name": MaskRule(kind=MaskKind.KEEP, first=1, last=0),
        "approved_on": MaskKind.MONTH,
        "address": MaskKind.REDACT,
        "region_code": MaskKind.ID_CARD,
    }
    compiled = compile_view(View.of(None, masking, (), b"k" * 32), sample.schema_json)
    out = compiled.apply({**RECORD, "approved_on": datetime.date(2026, 1, 17), "address": "x"})
    assert out["approved_on"] == datetime.date(2026, 1, 1)  # still a date
    assert out["name"] == "张*" and out["address"] == "******"
    assert len(out["id_card"]) == 24 and out["id_card"] != RECORD["id_card"]
    codec = AvroCodec(compiled.schema_json)
    assert codec.decode(codec.encode(out)) == out
    with pytest.raises(ViewError, match="pseudonym key"):
        compile_view(View.of(None, {"id_card": MaskKind.PSEUDONYM}), sample.schema_json)
    with pytest.raises(ViewError, match="not a date"):
        compile_view(View.of(None, {"household_size": MaskKind.YEAR}), sample.schema_json)
    with pytest.raises(ViewError, match="household_size"):
        compile_view(
            View.of(None, {}, (Predicate(field="household_size", op=Op.EQ, value="x"),)),
            sample.schema_json,
        )


def test_redacting_a_nullable_non_string_gives_null() -> None:
    schema = orjson.dumps(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "born", "type": ["null", {"type": "int", "logicalType": "date"}]},
                {"name": "n", "type": ["null", "long"]},
            ],
        }
    ).decode()
    compiled = compile_view(View.of(None, {"n": MaskKind.REDACT}), schema)
    assert compiled.apply({"born": None, "n": 7}) == {"born": None, "n": None}
    born = compile_view(View.of(None, {"born": MaskKind.YEAR}), schema)
    assert born.apply({"born": datetime.date(1990, 5, 6), "n": 1})["born"] == datetime.date(
        1990, 1, 1
    )
