"""The verification body's fast path takes exactly what :class:`VerifyRequest` takes, with
the same values, and leaves everything else to it (and its error message)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hub.dataservice.access import AccessDenied
from hub.dataservice.http import VerifyRequest, verify_body

from .conftest import PROPS

_scalar = st.one_of(
    st.text(max_size=5),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
_json = st.recursive(
    st.one_of(st.none(), _scalar),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_key = st.one_of(st.text(max_size=3), st.text(min_size=250, max_size=260), _json)
_claims = st.one_of(
    st.dictionaries(st.text(max_size=6), _scalar, max_size=3),
    st.dictionaries(st.text(max_size=3), _json, min_size=1, max_size=3),
    st.dictionaries(st.sampled_from([f"f{i}" for i in range(60)]), _scalar, min_size=45),
    _json,
)
_body = st.one_of(
    st.fixed_dictionaries(
        {
            "key": st.text(min_size=1, max_size=20),
            "fields": st.dictionaries(st.text(max_size=6), _scalar, min_size=1, max_size=3),
        }
    ),
    st.fixed_dictionaries({"key": _key, "fields": _claims}),
    st.fixed_dictionaries({"key": _key, "fields": _claims}, optional={"extra": _json}),
    st.dictionaries(st.sampled_from(["key", "fields", "other"]), _json, max_size=3),
)


def _by_model(data: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    try:
        req = VerifyRequest.model_validate(data)
    except ValueError:
        return None
    return req.key, req.fields


@PROPS
@given(_body)
def test_fast_path_agrees_with_the_model(data: dict[str, Any]) -> None:
    expected = _by_model(data)
    try:
        got: tuple[str, dict[str, Any]] | None = verify_body(data)
    except AccessDenied as exc:
        assert exc.status == 400 and str(exc).startswith("invalid request: ")
        got = None
    assert got == expected
    if got is not None and expected is not None:
        for name, value in got[1].items():
            assert type(value) is type(expected[1][name]), name
