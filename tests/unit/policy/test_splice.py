"""The native splice against the Python path (decode, CompiledView.apply, encode).

Every native result must be byte-identical to the Python path; malformed payloads must raise
SpliceError (never crash, never read past the payload).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import decimal
import functools
import io
import mmap
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from hub.bench.world import bench_resource, build_world, record_pool
from hub.catalogue.samples import load_sample, sample_names
from hub.policy import splice
from hub.policy.masking import Mask, MaskKind, MaskRule, _keep, masker
from hub.policy.predicates import Op, Predicate
from hub.policy.splice import NATIVE_AVAILABLE, SpliceError, compile_splice
from hub.policy.views import View, ViewError, compile_view
from hub.registry.schemas import AvroCodec, RecordDecodeError, SchemaError
from hub.router.routing import compile_routing_table

if TYPE_CHECKING:
    from hub.policy._splice import Program

native = pytest.mark.skipif(
    not NATIVE_AVAILABLE,
    reason="hub.policy._splice is not built (python setup.py build_ext --inplace)",
)
FAST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EPOCH = datetime.date(1970, 1, 1)
UTC = datetime.UTC


# --------------------------------------------------------------------------------------
# The Python path and helpers


@functools.cache
def codec(schema_json: str) -> AvroCodec:
    return AvroCodec(schema_json)


def python_path(view: View, writer_json: str, payload: bytes) -> bytes:
    compiled = compile_view(view, writer_json)
    record = codec(writer_json).decode(payload)
    return codec(compiled.schema_json).encode(compiled.apply(record))


def program_for(view: View, writer_json: str) -> Program:
    nv = compile_splice(view, writer_json)
    assert nv is not None, f"expected a native view for {view}"
    assert nv.schema_json == compile_view(view, writer_json).schema_json
    return nv.program


def assert_same(view: View, writer_json: str, record: dict[str, Any]) -> bytes:
    payload = codec(writer_json).encode(record)
    expected = python_path(view, writer_json, payload)
    got = program_for(view, writer_json)(payload)
    assert got == expected, (view, record)
    return got


def keep_rule(first: int, last: int) -> MaskRule:
    return MaskRule(kind=MaskKind.KEEP, first=first, last=last)


def record_schema(*fields: tuple[str, Any], name: str = "T") -> str:
    return orjson.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": "test.splice",
            "fields": [{"name": n, "type": t} for n, t in fields],
        }
    ).decode()


# --------------------------------------------------------------------------------------
# Values for any schema (hypothesis)

CJK = "张王李欧阳娜北京市朝阳区建国路号院单元室𠀀𠮷𪚥😀🇨🇳é"
TEXT = st.text(alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(CJK)), max_size=24)


def values(avro_type: Any, named: dict[str, Any], namespace: str, depth: int = 0) -> Any:
    """A strategy for values of ``avro_type`` as fastavro writes them (no ambiguous unions)."""
    if isinstance(avro_type, str):
        simple: dict[str, Any] = {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "bytes": st.binary(max_size=12),
            "string": TEXT,
        }
        if avro_type in simple:
            return simple[avro_type]
        full = avro_type if "." in avro_type else f"{namespace}.{avro_type}"
        target = named.get(full, named.get(avro_type))
        return st.deferred(lambda: values(target, named, namespace, depth + 1))
    if isinstance(avro_type, list):
        branches = avro_type
        if depth > 3 and "null" in branches:
            branches = ["null"]  # keep recursive values small
        return st.one_of(*(values(b, named, namespace, depth + 1) for b in branches))
    kind = avro_type["type"]
    logical = avro_type.get("logicalType")
    if logical == "date":
        return st.dates()
    if logical == "decimal":
        precision, scale = avro_type["precision"], avro_type.get("scale", 0)
        bound = 10**precision - 1
        return st.integers(-bound, bound).map(lambda n: decimal.Decimal(n).scaleb(-scale))
    if logical == "timestamp-millis":
        return st.integers(-(10**12), 4 * 10**12).map(
            lambda ms: datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(0, 0, 0, ms)
        )
    if kind in ("record", "enum", "fixed"):
        name = avro_type["name"]
        space = avro_type.get("namespace", namespace)
        full = name if "." in name else f"{space}.{name}"
        named[full] = avro_type
        if "." in name:
            space = name.rsplit(".", 1)[0]
        if kind == "enum":
            return st.sampled_from(avro_type["symbols"])
        if kind == "fixed":
            return st.binary(min_size=avro_type["size"], max_size=avro_type["size"])
        return st.fixed_dictionaries(
            {f["name"]: values(f["type"], named, space, depth + 1) for f in avro_type["fields"]}
        )
    if kind == "array":
        return st.lists(values(avro_type["items"], named, namespace, depth + 1), max_size=3)
    if kind == "map":
        return st.dictionaries(
            TEXT, values(avro_type["values"], named, namespace, depth + 1), max_size=3
        )
    return values(kind, named, namespace, depth)


def records(schema_json: str) -> Any:
    schema = orjson.loads(schema_json)
    return values(schema, {}, schema.get("namespace", ""))


STRING_MASKS: list[Mask] = [
    MaskKind.ID_CARD,
    MaskKind.NAME,
    MaskKind.PHONE,
    MaskKind.ADDRESS,
    MaskKind.BANK_CARD,
    MaskKind.REDACT,
    keep_rule(2, 3),
    keep_rule(0, 1),
    keep_rule(5, 0),
]


def _branches(avro_type: Any) -> list[Any]:
    return avro_type if isinstance(avro_type, list) else [avro_type]


def native_masks(avro_type: Any) -> list[Mask]:
    """Masks that apply to a field of ``avro_type`` and run natively."""
    non_null = [t for t in _branches(avro_type) if t != "null"]
    nullable = len(non_null) < len(_branches(avro_type))
    if non_null and all(t == "string" or t == {"type": "string"} for t in non_null):
        return STRING_MASKS
    masks: list[Mask] = [MaskKind.REDACT] if nullable else []
    if len(non_null) == 1 and non_null[0] == {"type": "int", "logicalType": "date"}:
        masks += [MaskKind.MONTH, MaskKind.YEAR]
    return masks


@st.composite
def views(draw: st.DrawFn, schema_json: str) -> View:
    fields = orjson.loads(schema_json)["fields"]
    names = [f["name"] for f in fields]
    kept = draw(st.one_of(st.none(), st.lists(st.sampled_from(names), unique=True)))
    masking: dict[str, Mask] = {}
    for f in fields:
        options = native_masks(f["type"])
        if not options:
            continue
        if draw(st.booleans()):
            masking[f["name"]] = draw(st.sampled_from(options))
    return View.of(None if kept is None else tuple(kept), masking)


# --------------------------------------------------------------------------------------
# A schema with every Avro type, nested and named types, recursion and namespaces

PLACE = {
    "type": "record",
    "name": "Place",
    "fields": [
        {"name": "street", "type": "string"},
        {
            "name": "geo",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Point",
                    "fields": [{"name": "x", "type": "double"}, {"name": "y", "type": "float"}],
                },
            },
        },
        {"name": "digests", "type": {"type": "map", "values": "Digest"}},
    ],
}
LINK = {
    "type": "record",
    "name": "Link",
    "fields": [{"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Link"]}],
}
EVERYTHING = orjson.dumps(
    {
        "type": "record",
        "name": "Everything",
        "namespace": "test.splice",
        "fields": [
            {"name": "id_card", "type": "string"},
            {"name": "flag", "type": "boolean"},
            {"name": "count", "type": "int"},
            {"name": "big", "type": "long"},
            {"name": "ratio", "type": "float"},
            {"name": "score", "type": "double"},
            {"name": "blob", "type": "bytes"},
            {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
            {
                "name": "colour",
                "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]},
            },
            {
                "name": "kind",
                "type": {"type": "enum", "name": "Kind", "namespace": "other", "symbols": ["A"]},
            },
            {"name": "name", "type": ["string", "null"]},
            {"name": "phone", "type": ["null", "string"]},
            {"name": "address", "type": {"type": "string"}},
            {"name": "born", "type": {"type": "int", "logicalType": "date"}},
            {"name": "died", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "scores", "type": {"type": "map", "values": ["null", "double"]}},
            {"name": "home", "type": PLACE},
            {"name": "work", "type": ["null", "Place"]},
            {"name": "chain", "type": ["null", LINK]},
            {"name": "kind_again", "type": "other.Kind"},
            {"name": "nothing", "type": "null"},
            {
                "name": "nested",
                "type": {
                    "type": "array",
                    "items": {"type": "map", "values": {"type": "array", "items": "int"}},
                },
            },
            {"name": "level", "type": ["null", "int", "string"]},
            {
                "name": "amount",
                "type": [
                    "null",
                    {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
                ],
            },
            {"name": "seen_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "bank_card", "type": "string"},
            {"name": "remark", "type": ["null", "string"]},
        ],
    }
).decode()

EVERYTHING_RECORD: dict[str, Any] = {
    "id_card": "11010519491231002X",
    "flag": True,
    "count": -7,
    "big": 2**40,
    "ratio": 0.5,
    "score": -1.25,
    "blob": b"\x00\xff",
    "digest": b"abcd",
    "colour": "BLUE",
    "kind": "A",
    "name": "欧阳娜娜",
    "phone": "13812345678",
    "address": "北京市朝阳区建外街道永安里1号",
    "born": datetime.date(1949, 12, 31),
    "died": datetime.date(2024, 2, 29),
    "tags": ["a", "张", ""],
    "scores": {"x": 1.0, "y": None},
    "home": {"street": "光华路", "geo": [{"x": 1.0, "y": 2.0}], "digests": {"k": b"wxyz"}},
    "work": None,
    "chain": {"value": 1, "next": {"value": 2, "next": None}},
    "kind_again": "A",
    "nothing": None,
    "nested": [{"a": [1, 2], "b": []}, {}],
    "level": "high",
    "amount": decimal.Decimal("12.34"),
    "seen_at": datetime.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
    "bank_card": "6222020200112233445",
    "remark": None,
}


# --------------------------------------------------------------------------------------
# Equivalence


@native
def test_bench_resource_views() -> None:
    resource = bench_resource()
    world = build_world(resource.resource.code, 1, 1, 2, 1)
    parties = {p.id: p for p in world.parties}
    table = compile_routing_table(resource.resource, world.subscriptions, parties)
    pool = record_pool(world.communities, 40)
    kinds = set()
    for route in table.routes:
        for record in pool:
            assert_same(route.view, resource.schema_json, record)
        kinds.add(route.view)
    assert len(kinds) == 3  # the community view (5 masks), the whole record, the projection


@native
@pytest.mark.parametrize("name", sample_names())
def test_sample_schemas(name: str) -> None:
    schema_json = load_sample(name).schema_json

    @FAST
    @given(record=records(schema_json), view=views(schema_json))
    def check(record: dict[str, Any], view: View) -> None:
        assert_same(view, schema_json, record)

    check()


@native
@FAST
@given(record=records(EVERYTHING), view=views(EVERYTHING))
def test_nested_schema_random_views(record: dict[str, Any], view: View) -> None:
    try:
        compile_view(view, EVERYTHING)
    except SchemaError:
        # A projection that drops the field defining a named type another kept field uses
        # has no valid view schema (compile_view refuses it; so does compile_splice).
        with pytest.raises(SchemaError):
            compile_splice(view, EVERYTHING)
        reject()
    assert_same(view, EVERYTHING, record)


@native
def test_nested_schema_fixed_record() -> None:
    for view in (
        View(),
        View.of(("remark", "id_card", "chain"), {}),
        View.of(
            None,
            {
                "id_card": MaskKind.ID_CARD,
                "name": MaskKind.NAME,
                "phone": MaskKind.PHONE,
                "address": MaskKind.ADDRESS,
                "bank_card": MaskKind.BANK_CARD,
                "remark": MaskKind.REDACT,
                "born": MaskKind.MONTH,
                "died": MaskKind.YEAR,
                "level": MaskKind.REDACT,
                "amount": MaskKind.REDACT,
                "work": MaskKind.REDACT,
                "chain": MaskKind.REDACT,
                "nothing": MaskKind.REDACT,
            },
        ),
        View.of(("id_card", "seen_at", "bank_card"), {"bank_card": keep_rule(1, 1)}),
    ):
        assert_same(view, EVERYTHING, EVERYTHING_RECORD)


STRINGS = [
    "",
    "a",
    "张",
    "😀",
    "ab",
    "张三",
    "𠮷😀",
    "1234",
    "12345678",
    "123456789",
    "1234567890",
    "12345678901",
    "11010519491231002X",
    "北京市朝阳区",
    "北京市朝阳区建",
    "北京市朝阳区建外街道永安里1号",
    "ab😀cd𠮷ef张gh",
    "é" * 11,
    "x" * 200,
    "张" * 60,
]
ALL_STRING_MASKS: list[Mask] = [*STRING_MASKS, keep_rule(1, 0), keep_rule(64, 64), keep_rule(0, 64)]


@native
@pytest.mark.parametrize("mask", ALL_STRING_MASKS, ids=repr)
@pytest.mark.parametrize("avro_type", ["string", ["null", "string"], ["string", "null"]], ids=str)
def test_every_string_mask(mask: Mask, avro_type: Any) -> None:
    schema_json = record_schema(("before", "int"), ("s", avro_type), ("after", "string"))
    view = View.of(None, {"s": mask})
    values_: list[str | None] = list(STRINGS)
    if avro_type != "string":
        values_.append(None)
    for value in values_:
        out = assert_same(view, schema_json, {"before": 1, "s": value, "after": "z"})
        decoded = codec(compile_view(view, schema_json).schema_json).decode(out)
        assert decoded["s"] == masker(mask)(value)


def test_name_mask_is_keep_one_zero() -> None:
    for value in STRINGS:
        assert masker(MaskKind.NAME)(value) == _keep(value, 1, 0)


@native
@pytest.mark.parametrize("kind", [MaskKind.MONTH, MaskKind.YEAR])
def test_dates_plain_and_nullable(kind: MaskKind) -> None:
    date = {"type": "int", "logicalType": "date"}
    schema_json = record_schema(("d", date), ("n", ["null", date]), ("m", [date, "null"]))
    view = View.of(None, {"d": kind, "n": kind, "m": kind})
    program = program_for(view, schema_json)
    rng = random.Random(5)
    first, last = datetime.date.min, datetime.date.max
    days = [first, last, EPOCH, datetime.date(2000, 2, 29), datetime.date(1900, 3, 1)]
    days += [datetime.date(2000, 1, 1) + datetime.timedelta(i) for i in range(0, 800, 3)]
    span = (last - first).days
    days += [first + datetime.timedelta(rng.randrange(span + 1)) for _ in range(400)]
    days += [datetime.date(y, 12, 31) for y in (4, 100, 400, 1600, 1700, 1999, 2000, 2100)]
    writer = codec(schema_json)
    for day in days:
        for n in (day, None):
            record = {"d": day, "n": n, "m": None if n else day}
            payload = writer.encode(record)
            assert program(payload) == python_path(view, schema_json, payload), day


@native
def test_redacted_nullable_non_strings_become_null() -> None:
    schema_json = record_schema(
        ("n", ["null", "long"]),
        ("r", ["double", "null", "string"]),
        ("z", "null"),
        (
            "rec",
            ["null", {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}],
        ),
    )
    view = View.of(None, dict.fromkeys(("n", "r", "z", "rec"), MaskKind.REDACT))
    for record in (
        {"n": 5, "r": 2.5, "z": None, "rec": {"a": 1}},
        {"n": None, "r": "x", "z": None, "rec": None},
        {"n": -(2**63), "r": None, "z": None, "rec": {"a": -1}},
    ):
        out = assert_same(view, schema_json, record)
        assert codec(compile_view(view, schema_json).schema_json).decode(out) == {
            "n": None,
            "r": None,
            "z": None,
            "rec": None,
        }


@native
def test_large_records() -> None:
    # Outputs past the stack buffer are built in a bytes object and shrunk.
    schema_json = record_schema(("a", "string"), ("b", ["null", "string"]), ("c", "string"))
    view = View.of(None, {"a": MaskKind.ADDRESS, "b": MaskKind.REDACT})
    for size in [*range(4070, 4110, 3), 20_000, 100_000]:
        for a in ("x" * size, "张" * (size // 3)):
            assert_same(view, schema_json, {"a": a, "b": "", "c": "y" * (size % 7)})
            assert_same(view, schema_json, {"a": "", "b": None, "c": a})


@native
def test_memoryview_and_bytearray_payloads() -> None:
    resource = bench_resource()
    view = View.of(("name", "phone"), {"name": MaskKind.NAME})
    program = program_for(view, resource.schema_json)
    payload = codec(resource.schema_json).encode(record_pool(["110101001001"], 1)[0])
    expected = program(payload)
    framed = b"\x00\x00\x00\x00\x07" + payload  # as a memoryview past a wire-format header
    assert program(memoryview(framed)[5:]) == expected
    assert program(bytearray(payload)) == expected
    assert program.apply(payload) == expected
    with pytest.raises(TypeError):
        program("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        program()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        program(payload, payload)  # type: ignore[call-arg]


@native
def test_negative_block_counts_are_skipped_and_copied() -> None:
    schema_json = record_schema(
        ("a", {"type": "array", "items": "string"}),
        ("m", {"type": "map", "values": "long"}),
        ("s", "string"),
    )
    zz = fastavro_long
    items = zz(1) + b"x" + zz(2) + b"yz"
    array = zz(-2) + zz(len(items)) + items + zz(1) + zz(0) + zz(0)
    entry = zz(1) + b"k" + zz(300)
    mapped = zz(-1) + zz(len(entry)) + entry + zz(0)
    payload = array + mapped + zz(6) + "张三".encode()
    assert codec(schema_json).decode(payload) == {
        "a": ["x", "yz", ""],
        "m": {"k": 300},
        "s": "张三",
    }
    dropped = View.of(("s",), {"s": MaskKind.NAME})
    assert program_for(dropped, schema_json)(payload) == python_path(dropped, schema_json, payload)
    copied = View.of(None, {"s": MaskKind.NAME})
    assert program_for(copied, schema_json)(payload) == array + mapped + zz(4) + "张*".encode()
    bad = zz(-2) + zz(len(items) + 1) + items + b"\x00" + zz(0) + mapped + zz(0)
    with pytest.raises(SpliceError, match="declares"):
        program_for(dropped, schema_json)(bad)


def fastavro_long(n: int) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, {"type": "long"}, n)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# Views that are not native


@native
def test_views_that_need_the_python_path() -> None:
    wangge = load_sample("shzl.wangge").schema_json
    huji = load_sample("gaj.huji").schema_json
    assert compile_splice(View.of(None, {"reported_at": MaskKind.MONTH}), wangge) is None
    assert compile_splice(View.of(None, {"reporter_phone": MaskKind.YEAR}), wangge) is None
    key = b"k" * 32
    assert compile_splice(View.of(None, {"name": MaskKind.PSEUDONYM}, (), key), huji) is None
    filtered = View.of(None, {}, (Predicate(field="gender", op=Op.EQ, value="1"),))
    assert compile_splice(filtered, huji) is None
    # the same ViewError rules as compile_view
    with pytest.raises(ViewError):
        compile_splice(View.of(("nope",), {}), huji)
    with pytest.raises(ViewError):
        compile_splice(View.of(None, {"birth_date": MaskKind.NAME}), huji)
    # masks of dropped fields are ignored, as in compile_view
    nv = compile_splice(View.of(("name",), {"phone": MaskKind.PSEUDONYM}, (), key), huji)
    assert nv is not None


def test_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splice, "_splice", None)
    huji = load_sample("gaj.huji").schema_json
    assert compile_splice(View.of(None, {"name": MaskKind.NAME}), huji) is None
    with pytest.raises(ViewError):
        compile_splice(View.of(("nope",), {}), huji)


# --------------------------------------------------------------------------------------
# Malformed payloads


def outcome(fn: Callable[[], bytes]) -> bytes | None:
    try:
        return fn()
    except (SpliceError, RecordDecodeError, ValueError):
        return None


MALFORMED_VIEWS = [
    View(),
    View.of(("id_card", "remark"), {}),
    View.of(
        None,
        {
            "name": MaskKind.NAME,
            "phone": MaskKind.PHONE,
            "died": MaskKind.MONTH,
            "level": MaskKind.REDACT,
            "chain": MaskKind.REDACT,
            "remark": MaskKind.REDACT,
        },
    ),
]


def truncation_cases() -> list[tuple[str, View]]:
    bench = bench_resource().schema_json
    community = View.of(
        None,
        {
            "id_card": MaskKind.ID_CARD,
            "name": MaskKind.NAME,
            "address": MaskKind.ADDRESS,
            "phone": MaskKind.PHONE,
            "bank_card": MaskKind.BANK_CARD,
        },
    )
    return [(EVERYTHING, view) for view in MALFORMED_VIEWS] + [(bench, View()), (bench, community)]


@native
@pytest.mark.parametrize(
    ("schema_json", "view"),
    truncation_cases(),
    ids=["all", "projection", "masks", "bench-all", "bench-community"],
)
def test_truncated_at_every_byte(schema_json: str, view: View) -> None:
    if schema_json == EVERYTHING:
        payload = codec(EVERYTHING).encode(EVERYTHING_RECORD)
    else:
        payload = codec(schema_json).encode(record_pool(["110101001001"], 1)[0])
    program = program_for(view, schema_json)
    assert program(payload) == python_path(view, schema_json, payload)
    for cut in range(len(payload)):
        truncated = payload[:cut]
        with pytest.raises(SpliceError):
            program(truncated)
        # fastavro refuses it as well
        assert outcome(functools.partial(python_path, view, schema_json, truncated)) is None


class GuardedBuffer:
    """Payloads placed to end right before an unreadable page: reading past one crashes."""

    def __init__(self) -> None:
        self.page = mmap.PAGESIZE
        self.map = mmap.mmap(-1, 2 * self.page)
        self.libc = ctypes.CDLL(None, use_errno=True)
        anchor = ctypes.c_char.from_buffer(self.map)
        self.guard = ctypes.addressof(anchor) + self.page
        del anchor
        self._protect(0)  # PROT_NONE

    def _protect(self, prot: int) -> None:
        mprotect = self.libc.mprotect
        mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        assert mprotect(self.guard, self.page, prot) == 0, ctypes.get_errno()

    def run(self, program: Program, payload: bytes) -> bytes | None:
        start = self.page - len(payload)
        self.map[start : self.page] = payload
        with memoryview(self.map) as whole, whole[start : self.page] as view:
            try:
                return program(view)
            except SpliceError:
                return None

    def close(self) -> None:
        self._protect(mmap.PROT_READ | mmap.PROT_WRITE)
        self.map.close()


@pytest.fixture
def guarded() -> Any:
    if not sys.platform.startswith("linux"):
        pytest.skip("needs mmap and mprotect")
    buffer = GuardedBuffer()
    yield buffer
    buffer.close()


@native
def test_no_read_past_the_payload(guarded: GuardedBuffer) -> None:
    rng = random.Random(3)
    payload = codec(EVERYTHING).encode(EVERYTHING_RECORD)
    for view in MALFORMED_VIEWS:
        program = program_for(view, EVERYTHING)
        assert guarded.run(program, payload) == program(payload)
        for cut in range(len(payload)):
            assert guarded.run(program, payload[:cut]) is None
        for _ in range(2000):
            corrupted = bytearray(payload[: rng.randrange(len(payload) + 1)])
            for _ in range(rng.randint(1, 3)):
                if corrupted:
                    corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
            guarded.run(program, bytes(corrupted))


@native
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupted_payloads_never_crash(data: st.DataObject) -> None:
    payload = bytearray(codec(EVERYTHING).encode(EVERYTHING_RECORD))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] = data.draw(st.integers(0, 255))
    view = data.draw(st.sampled_from(MALFORMED_VIEWS))
    program = program_for(view, EVERYTHING)
    try:
        out = program(bytes(payload))
    except SpliceError:
        return
    assert isinstance(out, bytes)
    assert len(out) <= len(payload) + program.growth


SIMPLE = record_schema(
    ("n", "int"),
    ("s", "string"),
    ("u", ["null", "string"]),
    ("e", {"type": "enum", "name": "E", "symbols": ["A", "B"]}),
    ("b", "boolean"),
    ("l", "long"),
)
SIMPLE_MASKED = View.of(None, {"s": MaskKind.NAME, "u": MaskKind.PHONE})


def simple(**parts: bytes) -> bytes:
    """A SIMPLE record (n=1, s="ab", u=None, e="A", b=True, l=1) with some parts replaced."""
    fields = {"n": b"\x02", "s": b"\x04ab", "u": b"\x00", "e": b"\x00", "b": b"\x01"}
    fields["tail"] = b"\x02"
    fields.update(parts)
    return b"".join(fields.values())


@native
@pytest.mark.parametrize(
    ("payload", "view", "message"),
    [
        (simple(), SIMPLE_MASKED, None),
        (simple(n=b"\xff" * 5 + b"\x01"), View(), "varint"),  # an int longer than 5 bytes
        (simple(n=b"\xff\xff\xff\xff\x1f"), View(), "varint"),  # past 32 bits
        (simple(tail=b"\xff" * 10 + b"\x01"), View(), "varint"),  # a long past 64 bits
        (simple(tail=b"\xff" * 3), View(), "truncated"),
        (simple(s=b"\x40ab"), View(), "past the end"),
        (simple(s=b"\x40ab"), SIMPLE_MASKED, "past the end"),
        (simple(s=b"\x03ab"), SIMPLE_MASKED, "negative length"),
        (simple(s=b"\x04\xed\xa0"), SIMPLE_MASKED, "UTF-8"),  # half a surrogate
        (simple(s=b"\x06\xed\xa0\x80"), SIMPLE_MASKED, "UTF-8"),  # a surrogate
        (simple(s=b"\x04\xc0\xaf"), SIMPLE_MASKED, "UTF-8"),  # overlong
        (simple(s=b"\x04a\xff"), SIMPLE_MASKED, "UTF-8"),
        (simple(s=b"\x08\xf4\x90\x80\x80"), SIMPLE_MASKED, "UTF-8"),  # past U+10FFFF
        (simple(s=b"\x04a\xe5"), SIMPLE_MASKED, "UTF-8"),  # cut in a character
        (simple(u=b"\x02\x04a\x80"), SIMPLE_MASKED, "UTF-8"),
        (simple(u=b"\x04"), SIMPLE_MASKED, "union branch index 2"),
        (simple(u=b"\x01"), SIMPLE_MASKED, "union branch index -1"),
        (simple(u=b"\x04"), View(), "union branch index 2"),
        (simple(e=b"\x04"), View(), "enum index 2"),
        (simple(b=b"\x02"), View(), "boolean"),
        (simple() + b"\x00", View(), "left over"),
        (b"", View(), "truncated"),
    ],
)
def test_malformed_payloads(payload: bytes, view: View, message: str | None) -> None:
    program = program_for(view, SIMPLE)
    if message is None:
        assert program(payload) == python_path(view, SIMPLE, payload)
        return
    with pytest.raises(SpliceError, match=message) as raised:
        program(payload)
    assert isinstance(raised.value, ValueError)


FRAGMENTS = [
    b"a", b"\x80", b"\xc2", b"\xc2\x80", b"\xdf\xbf", b"\xc0\xaf", b"\xe0\x9f\xbf",
    b"\xe0\xa0\x80", b"\xe5\xbc\xa0", b"\xed\x9f\xbf", b"\xed\xa0\x80", b"\xee\x80\x80",
    b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf0\x9f\x98\x80",
    b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff",
]  # fmt: skip


@native
@FAST
@given(
    raw=st.lists(st.sampled_from(FRAGMENTS), max_size=8).map(b"".join) | st.binary(max_size=8),
    mask=st.sampled_from(ALL_STRING_MASKS),
)
def test_masked_string_bytes_decode_like_python(raw: bytes, mask: Mask) -> None:
    schema_json = record_schema(("s", "string"))
    view = View.of(None, {"s": mask})
    payload = fastavro_long(len(raw)) + raw
    expected = outcome(lambda: python_path(view, schema_json, payload))
    assert outcome(lambda: program_for(view, schema_json)(payload)) == expected


@native
def test_utf8_validation_matches_python_exhaustively() -> None:
    program = program_for(View.of(None, {"s": MaskKind.REDACT}), record_schema(("s", "string")))

    def agrees(raw: bytes) -> bool:
        try:
            raw.decode()
            valid = True
        except UnicodeDecodeError:
            valid = False
        try:
            program(fastavro_long(len(raw)) + raw)
            return valid
        except SpliceError:
            return not valid

    tails = [b"", b"\x80", b"\xbf", b"\x80\x80", b"\xbf\xbf", b"\x7f\x80", b"\x80\xc0"]
    for lead in range(256):
        for second in range(256):
            for tail in tails:
                raw = bytes((lead, second)) + tail
                assert agrees(raw), raw


@native
def test_invalid_utf8_in_a_copied_string_is_not_checked() -> None:
    # Only masked strings are decoded; a copied one keeps its bytes.
    payload = simple(s=b"\x04a\xff")
    assert program_for(View(), SIMPLE)(payload) == payload


@native
def test_nesting_and_counts_are_bounded() -> None:
    schema_json = record_schema(
        ("chain", ["null", LINK]), ("a", {"type": "array", "items": "long"})
    )
    program = program_for(View.of(None, {}), schema_json)
    deep = b"\x02\x00" * 5000 + b"\x00" + b"\x00"  # 5,000 links
    with pytest.raises(SpliceError, match="nested more than"):
        program(deep)
    shallow = b"\x02\x00" * 100 + b"\x00" + b"\x00"
    assert program(shallow) == shallow
    huge = b"\x00" + fastavro_long(2**62) + b"\x00"  # an array claiming 2**62 items
    with pytest.raises(SpliceError, match="block count"):
        program(huge)
    nulls = record_schema(("a", {"type": "array", "items": "null"}))
    many = fastavro_long(2**62) + b"\x00"  # items of no bytes: nothing to read
    assert program_for(View(), nulls)(many) == many


@native
def test_c_api_capsule() -> None:
    from hub.policy import _splice

    class API(ctypes.Structure):
        _fields_ = [  # the layout of HubSpliceAPI in _splice.c
            ("version", ctypes.c_uint),
            ("program_type", ctypes.c_void_p),
            ("max_output", ctypes.PYFUNCTYPE(ctypes.c_ssize_t, ctypes.py_object, ctypes.c_ssize_t)),
            (
                "apply_into",
                ctypes.PYFUNCTYPE(
                    ctypes.c_ssize_t,
                    ctypes.py_object,
                    ctypes.c_char_p,
                    ctypes.c_ssize_t,
                    ctypes.c_void_p,
                ),
            ),
        ]

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api = API.from_address(get(_splice._C_API, b"hub.policy._splice._C_API"))
    assert api.version == 1
    assert api.program_type == id(_splice.Program)
    resource = bench_resource()
    program = program_for(View.of(None, {"name": MaskKind.NAME}), resource.schema_json)
    payload = codec(resource.schema_json).encode(record_pool(["110101001001"], 1)[0])
    room = api.max_output(program, len(payload))
    assert room == program.max_output(len(payload)) >= len(payload)
    out = ctypes.create_string_buffer(room)
    written = api.apply_into(program, payload, len(payload), ctypes.addressof(out))
    assert out.raw[:written] == program(payload)
    with pytest.raises(SpliceError):
        api.apply_into(program, payload[:-1], len(payload) - 1, ctypes.addressof(out))


@native
def test_program_construction_is_checked() -> None:
    from hub.policy._splice import Program

    ok = Program((("string",), ("union", (2, 0)), ("null",)), (("keep", "s", 1, 1, 0),))
    assert ok(b"\x02\x04ab") == b"\x02\x04a*"
    assert ok(b"\x00") == b"\x00"
    for types, ops in [
        ((("text",),), (("copy", "a", 0),)),
        ((("string",),), (("copy", "a", 1),)),
        ((("union", (5,)),), (("copy", "a", 0),)),
        ((("string",),), (("month", "a", 0),)),
        ((("int",),), (("keep", "a", 0, 1, 1),)),
        ((("string",),), (("keep", "a", 0),)),
        ((("string",),), (("keep", "a", 0, -1, 1),)),
        ((("string",),), (("null", "a", 0),)),
        ((("string",),), (("shred", "a", 0),)),
        ((("fixed",),), (("copy", "a", 0),)),
        ((("string",),), (("copy", 7, 0),)),
    ]:
        with pytest.raises((TypeError, ValueError)):
            Program(types, ops)


# --------------------------------------------------------------------------------------
# Memory


def rss_kib() -> int:
    fields = Path(f"/proc/{os.getpid()}/statm").read_text().split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@native
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_no_leaks() -> None:
    resource = bench_resource()
    masks = {"id_card": MaskKind.ID_CARD, "name": MaskKind.NAME, "phone": MaskKind.PHONE}
    program = program_for(View.of(None, masks), resource.schema_json)
    payload = codec(resource.schema_json).encode(record_pool(["110101001001"], 1)[0])
    bad = payload[:-3]
    view = memoryview(payload)

    def rounds(n: int) -> None:
        for _ in range(n):
            program(payload)
            program(view)
            with contextlib.suppress(SpliceError):
                program(bad)

    rounds(20_000)
    before = rss_kib()
    rounds(100_000)
    assert rss_kib() - before < 2048
