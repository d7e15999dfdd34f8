"""Region codes: any text is a valid code or InvalidRegionCode; prefixes nest."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.regions import (
    LEVEL_PREFIX_LENGTHS,
    InvalidRegionCode,
    is_within,
    jurisdiction_prefix,
    level_of,
    record_prefixes,
    validate_region_code,
)

from .conftest import PROPS


@st.composite
def region_codes(draw: st.DrawFn) -> str:
    """Well-formed codes: non-zero parts down to some level, zeros below."""
    depth = draw(st.integers(1, len(LEVEL_PREFIX_LENGTHS)))
    parts, start = [], 0
    for level, end in enumerate(LEVEL_PREFIX_LENGTHS, 1):
        width = end - start
        if level <= depth:
            parts.append(draw(st.integers(1, 10**width - 1).map(lambda n, w=width: f"{n:0{w}d}")))
        else:
            parts.append("0" * width)
        start = end
    return "".join(parts)


@settings(PROPS)
@given(st.one_of(st.text(max_size=14), st.text(alphabet="0123456789", min_size=12, max_size=12)))
def test_any_text_is_a_code_or_a_typed_error(text: str) -> None:
    try:
        validate_region_code(text)
    except InvalidRegionCode:
        return
    assert len(text) == 12 and text.isascii() and text.isdigit()
    assert record_prefixes(text)[-1] == jurisdiction_prefix(text)


@settings(PROPS)
@given(region_codes(), region_codes())
def test_prefixes_nest(code: str, other: str) -> None:
    level = level_of(code)
    prefixes = record_prefixes(code)
    assert len(prefixes) == level.value
    assert all(b.startswith(a) for a, b in itertools.pairwise(prefixes))
    assert is_within(code, code)
    # A code lies within each of its own levels, and within another code exactly when the
    # other's jurisdiction prefix is one of its prefixes.
    assert is_within(code, prefixes[0].ljust(12, "0"))
    assert is_within(code, other) == (jurisdiction_prefix(other) in prefixes)
