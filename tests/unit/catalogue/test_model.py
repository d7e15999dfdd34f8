"""Catalogue entries: every consistency rule, checked with and without the schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hub.catalogue.binding import CatalogueValidationError, bind_schema, validate_entry
from hub.catalogue.fields import FieldType
from hub.catalogue.model import (
    Classification,
    PersonalTag,
    ResourceStatus,
    ShareAttribute,
    parse_term,
)
from hub.policy.masking import MaskKind
from tests.unit.catalogue.conftest import SCHEMA, entry, with_field


def problems(raw: dict[str, Any], schema: str = SCHEMA) -> str:
    with pytest.raises(CatalogueValidationError) as info:
        bind_schema(raw, schema)
    return "; ".join(info.value.problems)


def test_a_valid_entry_gets_its_types_and_docs_from_the_schema() -> None:
    resource = bind_schema(entry(), SCHEMA)
    types = {f.name: f.type for f in resource.fields}
    assert types["amount"] is FieldType.DECIMAL and types["issued_on"] is FieldType.DATE
    assert types["seen_at"] is FieldType.TIMESTAMP and types["kind"] is FieldType.ENUM
    assert types["holder_name"] is FieldType.STRING  # the nullable union's branch
    assert resource.field("id") is not None and resource.field("id").description == "编号"  # type: ignore[union-attr]
    assert resource.personal_fields() == {
        "holder_id_card": PersonalTag.ID_CARD,
        "holder_name": PersonalTag.NAME,
    }
    assert resource.subject == "govhub.src.mzj.thing-value"
    assert resource.status is ResourceStatus.ACTIVE and resource.active
    # A stored entry (types filled in) binds again unchanged.
    assert bind_schema(resource, SCHEMA) == resource


def test_fields_must_match_the_schema_one_to_one() -> None:
    fields = [f for f in entry()["fields"] if f["name"] != "size"]
    fields.append({"name": "extra", "title": "多余"})
    text = problems(entry(fields=fields))
    assert "schema fields ['size'] have no catalogue entry" in text
    assert "catalogue fields ['extra'] are not in the schema" in text


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (with_field("size", personal="name"), "personal tag name needs a string field, not int"),
        (with_field("size", type="long"), "'size' is declared long but the schema has int"),
        (with_field("size", required=False), "optional in the catalogue but the schema gives"),
        (with_field("id", rules={"min": 1}), "min/max need a numeric type, not string"),
        (with_field("size", rules={"pattern": "x"}), "pattern/format/max_length need a string"),
        (with_field("amount", rules={"allowed": ["1"]}), "a code list needs a string, enum or"),
        (with_field("size", rules={"not_future": True}), "not_future/not_before need a date"),
        (with_field("size", rules={"min": 5, "max": 1}), "min 5 is greater than max 1"),
        (with_field("id", rules={"pattern": "("}), "is not a valid regular expression"),
        (with_field("id", rules={"allowed": []}), "a code list needs at least one value"),
        (with_field("id", rules={"allowed": ["a", "a"]}), "must not repeat values"),
        (with_field("org", rules={"format": "id_card"}), "format id_card needs the personal tag"),
        (with_field("id", rules={"colour": "red"}), "Extra inputs are not permitted"),
        (with_field("region_code", required=False), "region_field 'region_code' must be a requi"),
        (with_field("id", classification="core"), "a resource is classified at least as high"),
    ],
)
def test_field_rules(fields: list[dict[str, Any]], expected: str) -> None:
    assert expected in problems(entry(fields=fields))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"share_conditions": ""}, "有条件共享 (conditional) needs share_conditions"),
        ({"share": "not_shared", "share_conditions": ""}, "needs share_basis"),
        ({"share": "unconditional"}, "无条件共享 (unconditional) cannot have share_conditions"),
        (
            {"share": "unconditional", "share_conditions": "", "classification": "core"},
            "a 核心 (core) resource cannot be shared unconditionally",
        ),
        ({"open_attribute": "open"}, "cannot carry personal-data fields"),
        ({"classification": "core", "open_attribute": "conditional"}, "core) resource cannot be"),
        (
            {
                "share": "not_shared",
                "share_basis": "《条例》第十条",
                "open_attribute": "conditional",
            },
            "a 不予共享 resource cannot be open",
        ),
        ({"department_code": "9144030071526726XH"}, "not a valid 统一社会信用代码"),
        ({"related": ["thing"]}, "related must not name the resource itself"),
        ({"related": ["Bad Code"]}, "related resource code 'Bad Code' is malformed"),
        ({"status": "deprecated"}, "status deprecated and a deprecation record go together"),
        ({"key_field": "nope"}, "key_field 'nope' is not one of the fields"),
        ({"code": "Thing"}, "code: String should match pattern"),
        ({"update_cycle": "hourly"}, "update_cycle: Input should be"),
        ({"share_methods": []}, "share_methods must name at least one method"),
    ],
)
def test_resource_rules(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(CatalogueValidationError) as info:
        validate_entry(entry(**overrides))
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    raw = entry(share_conditions="", department_code="123", related=["thing"])
    with pytest.raises(CatalogueValidationError) as info:
        validate_entry(raw)
    text = str(info.value)
    assert "share_conditions" in text and "department_code" in text and "related" in text


def test_a_bad_schema_is_reported_as_such() -> None:
    assert "schema: invalid Avro schema" in problems(entry(), '{"type": "record"}')
    assert "must be an Avro record" in problems(entry(), '"string"')
    assert "schema:" in problems(entry(), "{not json")


def test_not_shared_with_basis_and_deprecation_are_valid() -> None:
    raw = entry(share="not_shared", share_conditions="", share_basis="《条例》第十条")
    assert validate_entry(raw).share is ShareAttribute.NOT_SHARED
    deprecated = entry(
        status="deprecated",
        deprecation={"reason": "replaced", "at": "2026-01-01T00:00:00Z", "by": "mzj"},
    )
    assert validate_entry(deprecated).deprecation is not None


def test_terms_parse_from_values_and_chinese_labels() -> None:
    assert parse_term(Classification, "核心") is Classification.CORE
    assert parse_term(Classification, "重要数据") is Classification.IMPORTANT
    assert parse_term(Classification, "general") is Classification.GENERAL
    assert parse_term(ShareAttribute, "不予共享") is ShareAttribute.NOT_SHARED
    assert parse_term(PersonalTag, "身份证号") is PersonalTag.ID_CARD
    with pytest.raises(ValueError, match="one of: general, important, core"):
        parse_term(Classification, "secret")


def test_default_masks_per_tag() -> None:
    assert PersonalTag.ID_CARD.default_mask is MaskKind.ID_CARD
    assert PersonalTag.OTHER.default_mask is MaskKind.REDACT
    assert {t.label for t in PersonalTag} == {
        "身份证号",
        "姓名",
        "手机号",
        "地址",
        "银行卡号",
        "其他",
    }


def test_stored_rows_round_trip_through_json() -> None:
    resource = bind_schema(entry(), SCHEMA)
    again = validate_entry(orjson.loads(orjson.dumps(resource.model_dump(mode="json"))))
    assert again == resource
