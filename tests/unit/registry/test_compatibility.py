from __future__ import annotations

import orjson
import pytest

from hub.registry.compatibility import Compatibility, incompatibilities, versions_to_check
from hub.registry.errors import InvalidCompatibilityLevel


def record(*fields: dict[str, object]) -> str:
    return orjson.dumps({"type": "record", "name": "R", "fields": list(fields)}).decode()


A = {"name": "a", "type": "string"}
B = {"name": "b", "type": "int"}
B_DEFAULT = {"name": "b", "type": "int", "default": 0}
V1 = record(A)
ADD_REQUIRED = record(A, B)
ADD_OPTIONAL = record(A, B_DEFAULT)
RETYPE = record({"name": "a", "type": "int"})


@pytest.mark.parametrize(
    ("level", "candidate", "compatible"),
    [
        (Compatibility.BACKWARD, ADD_REQUIRED, False),
        (Compatibility.BACKWARD, ADD_OPTIONAL, True),
        (Compatibility.FORWARD, ADD_REQUIRED, True),
        (Compatibility.FORWARD, record(B_DEFAULT), False),  # old reader needs 'a'
        (Compatibility.FULL, ADD_OPTIONAL, True),
        (Compatibility.FULL, ADD_REQUIRED, False),
        (Compatibility.NONE, RETYPE, True),
        (Compatibility.BACKWARD, RETYPE, False),
    ],
)
def test_levels_follow_the_avro_checker(
    level: Compatibility, candidate: str, compatible: bool
) -> None:
    problems = incompatibilities(candidate, [(1, V1)], level)
    assert (not problems) is compatible
    assert all("version 1" in p for p in problems)


def test_transitive_levels_compare_with_every_live_version() -> None:
    # v2 drops 'b' (fine for BACKWARD against v2) but v1 wrote 'a' as a string.
    v1, v2 = record(A), record({"name": "a", "type": "string", "default": ""})
    candidate = record({"name": "c", "type": "int", "default": 1})
    live = [(1, v1), (2, v2)]
    assert versions_to_check(live, Compatibility.BACKWARD) == [(2, v2)]
    assert versions_to_check(live, Compatibility.NONE) == ()
    plain = incompatibilities(
        candidate, versions_to_check(live, Compatibility.FORWARD), Compatibility.FORWARD
    )
    transitive_level = Compatibility.FORWARD_TRANSITIVE
    transitive = incompatibilities(
        candidate, versions_to_check(live, transitive_level), transitive_level
    )
    assert plain == []
    assert transitive and "version 1" in transitive[0]


def test_level_names_are_checked() -> None:
    assert Compatibility.parse("full_transitive") is Compatibility.FULL_TRANSITIVE
    for bad in ("SOMETIMES", None, 3):
        with pytest.raises(InvalidCompatibilityLevel):
            Compatibility.parse(bad)
