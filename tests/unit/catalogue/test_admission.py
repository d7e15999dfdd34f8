"""The native admission (hub.catalogue._fastrecord) against the Python path.

The Python path is the reference: ``check_record``, then ``AvroCodec.from_json`` and
``encode``, then the Confluent framing. Whatever the compiled program admits on its own
must be byte-identical to it; everything else goes to the Python path, so the verdicts
(admitted bytes, or reason and detail) are identical for every record. Malformed input
never crashes the program.
"""

from __future__ import annotations

import datetime
import decimal
import gc
import types
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from hub.catalogue.admission import NATIVE_AVAILABLE, Admission, native_plan
from hub.catalogue.binding import bind_schema
from hub.catalogue.codes import id_card_check_char, uscc_check_char
from hub.catalogue.model import Resource
from hub.catalogue.quality import CST, QualityViolation
from hub.catalogue.samples import load_sample, sample_names
from hub.demo.world import generate_records
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec
from tests.unit.catalogue.conftest import SCHEMA, entry

native = pytest.mark.skipif(
    not NATIVE_AVAILABLE,
    reason="hub.catalogue._fastrecord is not built (python setup.py build_ext --inplace)",
)
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCHEMA_ID = 0x01020304
TODAY = datetime.datetime.now(CST).date()


def admission(resource: Resource, schema_json: str) -> Admission:
    return Admission(resource, AvroCodec(schema_json), SCHEMA_ID)


def _id(first17: str) -> str:
    return first17 + id_card_check_char(first17)


def _uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


THING = admission(bind_schema(entry(), SCHEMA), SCHEMA)
THING_GOOD: dict[str, Any] = {
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

# A valid record per sample resource, with values as JSON sources send them.
SAMPLE_GOOD: dict[str, dict[str, Any]] = {
    "mzj.dibao": generate_records(1, invalid=0)[0],
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
        "updated_at": "2026-05-01T10:00:00.250+08:00",
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
        "subcategory": None,
        "description": "3号楼消防通道堆放杂物",
        "location": "北京市朝阳区永安里社区3号楼",
        "longitude": 116.45,
        "latitude": 39.91,
        "reporter_name": None,
        "reporter_phone": None,
        "reported_at": 1761960600000,
        "urgency": "紧急",
        "status": "处置中",
    },
}
SAMPLES = {name: load_sample(name) for name in sample_names()}
ADMISSIONS = {name: admission(s.resource, s.schema_json) for name, s in SAMPLES.items()}


def reference(adm: Admission, record: dict[str, Any], regions: Any = None) -> Any:
    """The verdict as the publisher computed it before the admission existed."""
    return adm.admit_python(record, regions)


def same(adm: Admission, record: Any, regions: Any = None) -> Any:
    """Checks every way of asking against the Python path; returns the verdict."""
    expected = adm.admit_python(record, regions)
    assert adm.admit(record, regions) == expected
    assert adm.admit_batch([record, None], regions) == [expected, None]
    fast = adm.admit_native(record, regions)
    if fast is not None:
        assert isinstance(expected, tuple), (record, expected)
        assert fast == expected
        assert type(fast[0]) is bytes and type(fast[1]) is str and type(fast[2]) is str
    return expected


# -- the reference itself ------------------------------------------------------------------


def test_the_python_path_is_check_then_encode_then_frame() -> None:
    sample = SAMPLES["mzj.dibao"]
    codec = AvroCodec(sample.schema_json)
    record = SAMPLE_GOOD["mzj.dibao"]
    value, key, region = ADMISSIONS["mzj.dibao"].admit_python(record)  # type: ignore[misc]
    assert value == frame(SCHEMA_ID, codec.encode(codec.from_json(record)))
    assert (key, region) == (record["id_card"], record["region_code"])
    assert codec.decode(value[5:])["amount"] == decimal.Decimal(record["amount"])
    bad = ADMISSIONS["mzj.dibao"].admit_python({**record, "region_code": "1101"})
    assert isinstance(bad, QualityViolation) and bad.reason == "invalid-region"
    extra = ADMISSIONS["mzj.dibao"].admit_python({**record, "surplus": 1})
    assert isinstance(extra, QualityViolation) and extra.reason == "schema-mismatch"


# -- the native path ------------------------------------------------------------------------


@native
@pytest.mark.parametrize("name", sorted(SAMPLE_GOOD))
def test_every_sample_resource_compiles_and_admits_valid_records_natively(name: str) -> None:
    adm = ADMISSIONS[name]
    assert adm.native
    record = SAMPLE_GOOD[name]
    assert isinstance(same(adm, record), tuple)
    assert adm.admit_native(record) is not None, "a valid record should not need Python"


@native
def test_demo_records_are_admitted_natively_in_a_batch() -> None:
    adm = ADMISSIONS["mzj.dibao"]
    records = generate_records(300, invalid=10)
    regions = frozenset(r["region_code"] for r in records[:290])
    verdicts = adm.admit_batch(records, regions)
    assert verdicts == [adm.admit_python(r, regions) for r in records]
    assert sum(isinstance(v, tuple) for v in verdicts) >= 280
    assert sum(adm.admit_native(r, regions) is not None for r in records) >= 280


@native
def test_a_violation_is_counted_once_and_explained_by_the_python_path() -> None:
    adm = ADMISSIONS["mzj.dibao"]
    record = {**SAMPLE_GOOD["mzj.dibao"], "household_size": 99}
    labels = {"resource": "dibao", "rule": "out-of-range"}
    before = REGISTRY.get_sample_value("govhub_quality_violations_total", labels) or 0.0
    assert adm.admit_native(record) is None
    verdict = adm.admit(record)
    assert isinstance(verdict, QualityViolation) and verdict.reason == "out-of-range"
    assert verdict.detail == "field 'household_size' is outside [1, 20] (got '99')"
    assert REGISTRY.get_sample_value("govhub_quality_violations_total", labels) == before + 1


@native
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"region_code": "110105000001"}, "invalid-region"),
        ({"holder_id_card": "110105194912310021"}, "invalid-id-card"),
        ({"id": "X0001"}, "pattern-mismatch"),
        ({"size": 0}, "out-of-range"),
        ({"amount": "1000"}, "out-of-range"),
        ({"amount": "12.5x"}, "not-a-number"),
        ({"issued_on": "1999-12-31"}, "date-too-early"),
        ({"issued_on": (TODAY + datetime.timedelta(days=2)).isoformat()}, "future-date"),
        ({"issued_on": "2020-02-30"}, "invalid-date"),
        ({"seen_at": "2999-01-01T00:00:00+08:00"}, "future-date"),
        ({"org": "9144030071526726XH"}, "invalid-uscc"),
        ({"holder_id_card": " "}, "missing-field"),
        ({"kind": "C"}, "schema-mismatch"),
        ({"amount": "12.345"}, "schema-mismatch"),
        ({"size": "3"}, "schema-mismatch"),
    ],
)
def test_each_rule_gives_the_python_reason(change: dict[str, Any], reason: str) -> None:
    record = {**THING_GOOD, **change}
    assert THING.admit_native(record) is None
    verdict = same(THING, record)
    assert isinstance(verdict, QualityViolation) and verdict.reason == reason


@native
def test_forms_the_program_reads_itself() -> None:
    """Values in the forms sources send, admitted without the Python path."""
    forms: list[dict[str, Any]] = [
        {"amount": 12},
        {"amount": "-0.00"},
        {"amount": "+0.5"},
        {"amount": "0999.99"},
        {"issued_on": 18_262},  # epoch days
        {"seen_at": 1767225600000},  # epoch milliseconds
        {"seen_at": "2026-01-01T00:00:00Z"},
        {"seen_at": "2025-12-31T16:00:00.123456-08:00"},
        {"holder_name": None},
        {"org": ""},
        {"holder_id_card": "11010519491231002x"},
    ]
    for change in forms:
        record = {**THING_GOOD, **change}
        assert THING.admit_native(record) is not None, change
        assert isinstance(same(THING, record), tuple)
    absent = dict(THING_GOOD)
    del absent["holder_name"]  # optional, null default
    assert THING.admit_native(absent) is not None
    same(THING, absent)


@native
def test_regions_from_any_container() -> None:
    record = SAMPLE_GOOD["mzj.dibao"]
    adm = ADMISSIONS["mzj.dibao"]
    region = record["region_code"]

    class Listing:
        def __contains__(self, code: object) -> bool:
            return code == region

    class Broken:
        def __contains__(self, code: object) -> bool:
            raise LookupError("the directory is gone")

    for regions in (None, {region}, frozenset({region}), [region], Listing()):
        assert adm.admit_native(record, regions) is not None
        same(adm, record, regions)
    for regions in (set(), frozenset({"110105001002"})):
        verdict = same(adm, record, regions)
        assert isinstance(verdict, QualityViolation) and verdict.reason == "unknown-region"
    # A container that fails fails the same way on both paths.
    with pytest.raises(LookupError):
        adm.admit(record, Broken())
    with pytest.raises(LookupError):
        adm.admit_python(record, Broken())
    assert adm.admit_native(record, Broken()) is None


# -- random records -------------------------------------------------------------------------

text_forms = st.sampled_from(
    [
        "",
        " ",
        "\u3000",
        "\t\n",
        "1.",
        ".5",
        "1e3",
        "1E+2",
        " 12 ",
        "+5",
        "-0.00",
        "١٢",
        "0012.50",
        "999.99",
        "1000",
        "-0.01",
        "12.345",
        "NaN",
        "Infinity",
        "0" * 50 + "1",
        "9" * 40,
        "2020-02-30",
        "2020-05-01",
        "2020-W01-1",
        "20200501",
        "1999-12-31",
        "0000-01-01",
        "9999-12-31",
        "2026-01-01T08:00:00",
        "2026-01-01T08:00:00+08:00",
        "2026-01-01T08:00:00.5+08:00",
        "2026-01-01T24:00:00+08:00",
        "9999-12-31T23:59:59-08:00",
        "0001-01-01T00:00:00+08:00",
        "A",
        "B",
        "URBAN",
        "RURAL",
        "T0001",
        "X0001",
        "11010519491231002x",
        "110105194912310021",
        "9144030071526726XH",
        "110105001001",
        "110105000001",
        "\ud800",
        "张" * 300,
    ]
)
decimal_text = st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str)
moments = st.datetimes(
    min_value=datetime.datetime(1, 1, 2),
    max_value=datetime.datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [
            datetime.UTC,
            CST,
            datetime.timezone(datetime.timedelta(hours=-8)),
            datetime.timezone(datetime.timedelta(hours=5, minutes=45)),
        ]
    ),
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=24),
    text_forms,
    decimal_text,
    st.dates().map(str),
    st.integers(min_value=-800_000, max_value=3_000_000),  # epoch days, in and out of range
    moments.map(lambda m: m.isoformat()),
    moments.map(lambda m: m.isoformat(timespec="milliseconds")),
    moments.map(lambda m: int(m.timestamp() * 1000)),
    st.just(decimal.Decimal("1.5")),
    st.just(datetime.date(2020, 5, 1)),
    st.just(b"raw"),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def perturbed(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly good records: a few fields changed, dropped, or a key added."""
    keys = sorted(good)

    def build(changes: dict[str, Any], dropped: set[str], extra: bool) -> dict[str, Any]:
        record = {**good, **changes}
        for key in dropped:
            record.pop(key, None)
        if extra:
            record["surplus"] = 1
        return record

    return st.builds(
        build,
        st.dictionaries(st.sampled_from(keys), anything, max_size=3),
        st.sets(st.sampled_from(keys), max_size=1),
        st.booleans(),
    )


@native
@FUZZ
@given(perturbed(THING_GOOD), st.sampled_from([None, frozenset({"110105001001"})]))
def test_random_records_of_a_resource_with_every_rule(record: dict[str, Any], regions: Any) -> None:
    same(THING, record, regions)


@native
@FUZZ
@given(st.sampled_from(sorted(SAMPLE_GOOD)), st.data())
def test_random_records_of_the_sample_resources(name: str, data: st.DataObject) -> None:
    record = data.draw(perturbed(SAMPLE_GOOD[name]))
    same(ADMISSIONS[name], record)


@native
@FUZZ
@given(moments, st.sampled_from(["auto", "milliseconds", "microseconds", "seconds"]))
def test_timestamps_as_text_encode_like_fastavro(moment: datetime.datetime, spec: str) -> None:
    record = {**THING_GOOD, "seen_at": moment.isoformat(timespec=spec)}
    verdict = same(THING, record)
    if moment <= datetime.datetime.now(CST) and moment.year > 1:
        assert isinstance(verdict, tuple)
        assert THING.admit_native(record) is not None


@native
@FUZZ
@given(decimal_text | st.integers(min_value=-(10**12), max_value=10**12))
def test_decimals_encode_like_fastavro(amount: Any) -> None:
    record = {**SAMPLE_GOOD["mzj.dibao"], "amount": amount}
    same(ADMISSIONS["mzj.dibao"], record)


# -- wide records, other types ---------------------------------------------------------------

WIDE_SCHEMA = orjson.dumps(
    {
        "type": "record",
        "name": "Wide",
        "namespace": "t",
        "fields": [
            {"name": "key", "type": "long"},
            {"name": "region_code", "type": "string"},
            {"name": "flag", "type": "boolean"},
            {"name": "ratio", "type": "float"},
            {"name": "share", "type": "double"},
            {"name": "blob", "type": "bytes"},
            {"name": "maybe_int", "type": ["null", "int"], "default": None},
            {"name": "maybe_double", "type": ["double", "null"]},
            {"name": "maybe_flag", "type": ["null", "boolean"], "default": None},
            {
                "name": "maybe_kind",
                "type": ["null", {"type": "enum", "name": "K", "symbols": ["X"]}],
            },
            {"name": "phone", "type": ["null", "string"], "default": None},
            *({"name": f"c{i}", "type": "string"} for i in range(70)),
        ],
    }
).decode()


def _wide_entry() -> dict[str, Any]:
    fields: list[dict[str, Any]] = [
        {"name": "key", "title": "键"},
        {"name": "region_code", "title": "区划", "rules": {"format": "region_code"}},
        {"name": "flag", "title": "标志"},
        {"name": "ratio", "title": "比例"},
        {"name": "share", "title": "份额", "rules": {"min": "0", "max": "1"}},
        {"name": "blob", "title": "数据"},
        {"name": "maybe_int", "title": "整数", "required": False},
        {"name": "maybe_double", "title": "小数", "required": False},
        {"name": "maybe_flag", "title": "可选标志", "required": False},
        {"name": "maybe_kind", "title": "类别", "required": False},
        {
            "name": "phone",
            "title": "电话",
            "personal": "phone",
            "required": False,
            "rules": {"format": "mobile", "max_length": 11},
        },
        *({"name": f"c{i}", "title": f"列{i}", "rules": {"max_length": 400}} for i in range(70)),
    ]
    fields[12]["rules"] = {"allowed": ["列" * 100, "x"]}  # c1: a code list
    return entry(code="wide", key_field="key", classification="important", fields=fields)


WIDE = admission(bind_schema(_wide_entry(), WIDE_SCHEMA), WIDE_SCHEMA)
WIDE_GOOD: dict[str, Any] = {
    "key": 2**40,
    "region_code": "110105001001",
    "flag": True,
    "ratio": 0.25,
    "share": 0.5,
    "blob": b"\x00\xff",
    "maybe_int": None,
    "maybe_double": 1.5,
    "maybe_flag": False,
    "maybe_kind": "X",
    "phone": "13800138000",
    **{f"c{i}": "列" * 100 for i in range(70)},  # ~21 KB of UTF-8: past any stack buffer
}


@native
def test_a_wide_record_with_every_primitive_type() -> None:
    assert WIDE.native
    assert WIDE.admit_native(WIDE_GOOD) is not None
    verdict = same(WIDE, WIDE_GOOD)
    assert isinstance(verdict, tuple) and len(verdict[0]) > 20_000
    assert verdict[1] == str(2**40)
    for change in ({"maybe_double": None, "maybe_kind": None, "c1": "x"}, {"maybe_int": -(2**31)}):
        record = {**WIDE_GOOD, **change}
        assert WIDE.admit_native(record) is not None, change
        same(WIDE, record)
    for change in (
        {"maybe_int": 2**31},  # the union's int branch takes 32-bit values only
        {"share": 2},  # an int for a double: Python converts it, the program does not
        {"ratio": True},
        {"blob": bytearray(b"x")},
        {"maybe_kind": "Y"},
        {"phone": "1380013800"},
        {"c0": "x" * 401},
        {"c1": "y"},
    ):
        record = {**WIDE_GOOD, **change}
        assert WIDE.admit_native(record) is None, change
        same(WIDE, record)


@native
@FUZZ
@given(perturbed(WIDE_GOOD))
def test_random_wide_records(record: dict[str, Any]) -> None:
    same(WIDE, record)


# -- what the program refuses to compile, and malformed input ---------------------------------


def test_schemas_beyond_the_program_take_the_python_path() -> None:
    nested = orjson.dumps(
        {
            "type": "record",
            "name": "N",
            "fields": [
                {"name": "id", "type": "string"},
                {"name": "region_code", "type": "string"},
                {"name": "tags", "type": {"type": "array", "items": "string"}},
            ],
        }
    ).decode()
    fields = [
        {"name": "id", "title": "编号"},
        {"name": "region_code", "title": "区划"},
        {"name": "tags", "title": "标签"},
    ]
    resource = bind_schema(entry(code="nested", key_field="id", fields=fields), nested)
    assert native_plan(resource, AvroCodec(nested)) is None
    adm = admission(resource, nested)
    assert not adm.native
    record = {"id": "a", "region_code": "110105001001", "tags": ["x"]}
    assert adm.admit_native(record) is None
    assert isinstance(adm.admit(record), tuple)
    assert adm.admit_batch([record, None]) == [adm.admit_python(record), None]


@native
@pytest.mark.parametrize(
    "record",
    [
        [],
        "a string",
        42,
        types.MappingProxyType(dict(THING_GOOD)),
        {1: "non-str key", **THING_GOOD},
        {**THING_GOOD, "id": THING_GOOD},
    ],
)
def test_malformed_input_never_crashes(record: Any) -> None:
    assert THING.admit_native(record) is None
    if isinstance(record, dict | types.MappingProxyType):
        same(THING, record)


@native
def test_a_record_that_contains_itself() -> None:
    record: dict[str, Any] = dict(THING_GOOD)
    record["org"] = record
    assert THING.admit_native(record) is None
    verdict = same(THING, record)
    assert isinstance(verdict, QualityViolation)


@native
def test_malformed_plans_are_refused() -> None:
    from hub.catalogue._fastrecord import Program

    def fallback(record: Any, regions: Any) -> None:
        return None

    def field(
        encoding: tuple[Any, ...] = ("string",),
        union: Any = None,
        missing_null: bool = False,
        *checks: tuple[Any, ...],
    ) -> tuple[Any, ...]:
        return ("a", True, encoding, union, missing_null, checks)

    ok = field()
    bad_plans: list[Callable[[], Any]] = [
        lambda: Program((), 1, 0, 0, fallback),
        lambda: Program((ok,), 1, 1, 0, fallback),
        lambda: Program((ok,), 2**33, 0, 0, fallback),
        lambda: Program((ok,), 1, 0, 0, "not callable"),
        lambda: Program((ok, ok), 1, 0, 0, fallback),
        lambda: Program(("not a tuple",), 1, 0, 0, fallback),
        *(
            (lambda f=f: Program((f,), 1, 0, 0, fallback))
            for f in (
                field(("nope",)),
                field(("string", 1)),
                field(("decimal", 0, 2)),
                field(("enum", [])),
                field(("string",), None, True),
                field(("string",), (0, -1)),
                field(("string",), None, False, ("max_length", -1)),
                field(("string",), None, False, ("range", (0, 1, 0, 1), None)),
                field(("string",), None, False, ("allowed", {"x"})),
                field(("string",), None, False, ("pattern", 3)),
                field(("string",), None, False, ("id_card", 1)),
            )
        ),
    ]
    for build in bad_plans:
        with pytest.raises((ValueError, TypeError, OverflowError)):
            build()


@native
def test_the_fallback_decides_and_its_errors_surface() -> None:
    from hub.catalogue._fastrecord import Program

    calls: list[Any] = []

    def fallback(record: Any, regions: Any) -> str:
        calls.append(record)
        if record.get("a") == "boom":
            raise KeyError("boom")
        return "python"

    program = Program((("a", True, ("string",), None, False, (("region",),)),), 7, 0, 0, fallback)
    good = {"a": "110105001001"}
    assert program.admit(good, None) == (
        b"\x00\x00\x00\x00\x07\x18110105001001",
        good["a"],
        good["a"],
    )
    assert program.admit_batch([{"a": "x"}, None, good], None)[:2] == ["python", None]
    with pytest.raises(KeyError):
        program.admit_batch([good, {"a": "boom"}], None)
    assert calls == [{"a": "x"}, {"a": "boom"}]


@native
def test_programs_in_reference_cycles_are_collected() -> None:
    from hub.catalogue._fastrecord import Program

    class Holder:
        program: Any = None

        def fallback(self, record: Any, regions: Any) -> None:
            return None

    holder = Holder()
    holder.program = Program((("a", True, ("string",), None, False, ()),), 1, 0, 0, holder.fallback)
    count = sum(type(o).__name__ == "Program" for o in gc.get_objects())
    del holder
    gc.collect()
    assert sum(type(o).__name__ == "Program" for o in gc.get_objects()) == count - 1
