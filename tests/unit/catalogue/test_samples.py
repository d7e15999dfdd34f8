"""The sample resources in schemas/: all load, validate, and accept realistic records."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from hub.catalogue.codes import id_card_check_char, uscc_check_char
from hub.catalogue.quality import check_record
from hub.catalogue.samples import load_sample, sample_names
from hub.demo.world import generate_records

EXPECTED = {"scjgj.qiye", "gaj.huji", "mzj.dibao", "rsj.shebao", "shzl.wangge"}


def test_the_five_scenarios_are_there() -> None:
    assert set(sample_names()) >= EXPECTED


@pytest.mark.parametrize("name", sample_names())
def test_sample_loads_and_is_consistent(name: str) -> None:
    sample = load_sample(name)
    resource = sample.resource
    assert f"{resource.department}.{resource.code}" == name
    assert all(f.type is not None and f.title and f.description for f in resource.fields)
    assert resource.department_code is not None and resource.summary
    assert resource.personal_fields(), "every scenario carries personal data"


def test_demo_records_pass_the_dibao_rules() -> None:
    resource = load_sample("mzj.dibao").resource
    # The demo and the tests rely on these field names.
    assert [f.name for f in resource.fields] == [
        "id_card",
        "name",
        "region_code",
        "household_size",
        "amount",
        "approved_on",
        "category",
        "address",
    ]
    assert all(check_record(resource, r) is None for r in generate_records(100, invalid=0))
    bad = generate_records(2, invalid=2)[2:]  # the demo's deliberately broken records
    assert [check_record(resource, r).reason for r in bad] == [  # type: ignore[union-attr]
        "invalid-region",
        "invalid-id-card",
    ]


def _id(first17: str) -> str:
    return first17 + id_card_check_char(first17)


def _uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


RECORDS: dict[str, dict[str, Any]] = {
    "scjgj.qiye": {
        "uscc": _uscc("91110105MA01ABCD1"),
        "enterprise_name": "北京建外科技有限公司",
        "enterprise_type": "有限责任公司",
        "legal_representative": "李四",
        "registered_capital": "500.0000",
        "established_on": "2019-03-12",
        "domicile": "北京市朝阳区建国门外大街1号",
        "business_scope": "技术开发、技术咨询",
        "registration_status": "存续",
        "registration_authority": "北京市朝阳区市场监督管理局",
        "region_code": "110105001000",
        "contact_phone": "13800138000",
        "updated_at": "2026-05-01T10:00:00+08:00",
    },
    "gaj.huji": {
        "id_card": _id("11010519800101123"),
        "name": "王五",
        "gender": "1",
        "ethnicity": "01",
        "birth_date": "1980-01-01",
        "household_number": "110105123",
        "relation_to_head": "02",
        "region_code": "110105002001",
        "address": "北京市朝阳区朝外街道吉祥里3号楼",
        "phone": None,
        "change_type": "迁入",
        "changed_on": "2025-09-01",
    },
    "rsj.shebao": {
        "enrolment_id": "SB2026000123",
        "id_card": _id("11010519800101123"),
        "name": "王五",
        "insurance_type": "110",
        "status": "参保缴费",
        "employer_uscc": _uscc("91110105MA01ABCD1"),
        "employer_name": "北京建外科技有限公司",
        "insured_since": "2005-07-01",
        "contribution_base": "8500.00",
        "region_code": "110105002001",
        "bank_card": "6222020200112233445",
        "phone": "13900139000",
    },
    "shzl.wangge": {
        "event_id": "WG2026113000000001",
        "region_code": "110105001001",
        "grid_code": "110105001001003",
        "category": "安全隐患",
        "subcategory": "消防通道堵塞",
        "description": "3号楼消防通道堆放杂物",
        "location": "北京市朝阳区永安里社区3号楼",
        "longitude": 116.45,
        "latitude": 39.91,
        "reporter_name": None,
        "reporter_phone": None,
        "reported_at": "2026-11-01T09:30:00+08:00",
        "urgency": "紧急",
        "status": "处置中",
    },
}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_realistic_records_pass_and_broken_ones_do_not(name: str) -> None:
    resource = load_sample(name).resource
    record = RECORDS[name]
    assert set(record) == {f.name for f in resource.fields}
    assert check_record(resource, record) is None
    tomorrow = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()
    dated = next(f.name for f in resource.fields if f.rules.not_future)
    assert check_record(resource, {**record, dated: tomorrow}) is not None
    assert check_record(resource, {**record, "region_code": "1101"}) is not None
