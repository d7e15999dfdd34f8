"""The policy compiler: arbitrary predicates and views compile or fail with ViewError;
compiled filters never raise on records of their schema; the native splicer gives the
Python reference's bytes for every view it takes, and only SpliceError on garbage."""

from __future__ import annotations

import contextlib
import datetime
import decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.catalogue.samples import load_sample
from hub.policy.masking import MaskKind
from hub.policy.predicates import Op, Predicate
from hub.policy.splice import NATIVE_AVAILABLE, SpliceError, compile_splice
from hub.policy.views import View, ViewError, compile_view
from hub.registry.schemas import AvroCodec

from .conftest import PROPS

SAMPLE = load_sample("mzj.dibao")
SCHEMA = SAMPLE.schema_json
CODEC = AvroCodec(SCHEMA)
FIELDS = [
    "id_card",
    "name",
    "region_code",
    "household_size",
    "amount",
    "approved_on",
    "category",
    "address",
]
STRINGS = ["id_card", "name", "region_code", "address"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def predicates(draw: st.DrawFn) -> Predicate | None:
    op = draw(st.sampled_from(list(Op)))
    field = draw(st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=8)))
    try:
        if op in (Op.IN, Op.NOT_IN):
            return Predicate(
                field=field, op=op, values=tuple(draw(st.lists(scalars, min_size=1, max_size=4)))
            )
        return Predicate(field=field, op=op, value=draw(scalars))
    except ValidationError:
        return None  # refused at the api boundary already


@st.composite
def records(draw: st.DrawFn) -> dict[str, object]:
    return {
        "id_card": draw(st.text(max_size=20)),
        "name": draw(st.text(max_size=6)),
        "region_code": draw(st.text(alphabet="0123456789", min_size=12, max_size=12)),
        "household_size": draw(st.integers(-(2**31), 2**31 - 1)),
        "amount": decimal.Decimal(draw(st.integers(-(10**9), 10**9))) / 100,
        "approved_on": datetime.date(1970, 1, 1)
        + datetime.timedelta(days=draw(st.integers(0, 40000))),
        "category": draw(st.sampled_from(["URBAN", "RURAL"])),
        "address": draw(st.one_of(st.none(), st.text(max_size=30))),
    }


@settings(PROPS)
@given(st.lists(predicates(), max_size=3), records())
def test_predicates_compile_or_fail_typed_and_never_raise_per_record(
    preds: list[Predicate | None], record: dict[str, object]
) -> None:
    clean = tuple(p for p in preds if p is not None)
    try:
        compiled = compile_view(View.of(None, {}, clean), SCHEMA)
    except ViewError:
        return
    decoded = CODEC.decode(CODEC.encode(record))
    assert compiled.accepts(decoded) in (True, False)


views = st.builds(
    lambda fields, masks: View.of(fields, masks),
    st.one_of(st.none(), st.lists(st.sampled_from(FIELDS), min_size=1, unique=True).map(tuple)),
    st.dictionaries(
        st.sampled_from(STRINGS),
        st.sampled_from(
            [
                MaskKind.ID_CARD,
                MaskKind.NAME,
                MaskKind.PHONE,
                MaskKind.ADDRESS,
                MaskKind.BANK_CARD,
                MaskKind.REDACT,
            ]
        ),
        max_size=3,
    ),
)


@settings(PROPS)
@given(views, records())
def test_native_splice_equals_the_python_reference(view: View, record: dict[str, object]) -> None:
    assume(NATIVE_AVAILABLE)
    native = compile_splice(view, SCHEMA)
    assume(native is not None)
    assert native is not None
    compiled = compile_view(view, SCHEMA)
    view_codec = AvroCodec(compiled.schema_json)
    payload = CODEC.encode(record)
    expected = view_codec.encode(compiled.apply(CODEC.decode(payload)))
    assert native.program(payload) == expected
    # The view's bytes decode to exactly the masked record: never a wrong plaintext.
    assert view_codec.decode(expected) == compiled.apply(CODEC.decode(payload))


@settings(PROPS)
@given(views, st.binary(max_size=80))
def test_native_splice_on_garbage_raises_only_splice_error(view: View, data: bytes) -> None:
    assume(NATIVE_AVAILABLE)
    native = compile_splice(view, SCHEMA)
    assume(native is not None)
    assert native is not None
    with contextlib.suppress(SpliceError):
        native.program(data)
