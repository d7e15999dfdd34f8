"""Region codes (统计用区划代码) and jurisdiction matching.

A region code has 12 digits: province 2, city 2, county 2, township 3, village 3. A
jurisdiction is the significant prefix of a party's code (its trailing all-zero levels
dropped), and a record belongs to a jurisdiction when the record's code starts with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, TypeVar

REGION_CODE_LEN = 12
# Cumulative prefix lengths of the five administrative levels.
LEVEL_PREFIX_LENGTHS = (2, 4, 6, 9, 12)


class InvalidRegionCode(ValueError):
    """A value that is not a well-formed 12-digit region code."""


class Level(IntEnum):
    """Administrative level of a region code."""

    PROVINCE = 1  # 省
    CITY = 2  # 市
    COUNTY = 3  # 区县
    TOWNSHIP = 4  # 街道/乡镇
    VILLAGE = 5  # 社区/村

    @property
    def prefix_length(self) -> int:
        return LEVEL_PREFIX_LENGTHS[self.value - 1]


def validate_region_code(code: str) -> str:
    """Return ``code`` if it is well formed, else raise :class:`InvalidRegionCode`."""
    if len(code) != REGION_CODE_LEN or not code.isascii() or not code.isdigit():
        raise InvalidRegionCode(f"region code must be 12 ASCII digits, got {code!r}")
    if code[:2] == "00":
        raise InvalidRegionCode(f"region code {code!r} has no province")
    # A level may only be non-zero when every level above it is non-zero.
    seen_zero = False
    start = 0
    for end in LEVEL_PREFIX_LENGTHS:
        part = code[start:end]
        if set(part) == {"0"}:
            seen_zero = True
        elif seen_zero:
            raise InvalidRegionCode(
                f"region code {code!r} has a lower level below an all-zero level"
            )
        start = end
    return code


def level_of(code: str) -> Level:
    """The administrative level a region code denotes (the deepest non-zero level)."""
    validate_region_code(code)
    level = Level.PROVINCE
    start = 0
    for index, end in enumerate(LEVEL_PREFIX_LENGTHS):
        if set(code[start:end]) != {"0"}:
            level = Level(index + 1)
        start = end
    return level


def jurisdiction_prefix(code: str) -> str:
    """The significant prefix of a region code: ``110105001000`` -> ``110105001``."""
    return code[: level_of(code).prefix_length]


def record_prefixes(code: str) -> tuple[str, ...]:
    """Every jurisdiction prefix a record with this code falls under, shallowest first.

    Raises :class:`InvalidRegionCode` for a malformed code. The record's own level and the
    levels above it are returned; a prefix of all-zero digits is never a jurisdiction.
    """
    depth = level_of(code).prefix_length
    return tuple(code[:n] for n in LEVEL_PREFIX_LENGTHS if n <= depth)


def is_within(code: str, scope: str) -> bool:
    """Whether region ``code`` lies inside the jurisdiction of region ``scope``."""
    return code.startswith(jurisdiction_prefix(scope))


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """The territory a party may see: all records whose region code starts with ``prefix``."""

    prefix: str

    @classmethod
    def of(cls, region_code: str) -> Jurisdiction:
        return cls(jurisdiction_prefix(region_code))

    @property
    def level(self) -> Level:
        return Level(LEVEL_PREFIX_LENGTHS.index(len(self.prefix)) + 1)

    def contains(self, region_code: str) -> bool:
        return region_code.startswith(self.prefix)


T = TypeVar("T")


class PrefixIndex(Generic[T]):
    """Maps jurisdiction prefixes to values; a lookup costs O(levels), not O(entries).

    Built once when subscriptions change; the router calls :meth:`match` per record.
    """

    __slots__ = ("_by_prefix",)

    def __init__(self, items: Iterable[tuple[Jurisdiction, T]] = ()) -> None:
        self._by_prefix: dict[str, list[T]] = {}
        for jurisdiction, value in items:
            self.add(jurisdiction, value)

    def add(self, jurisdiction: Jurisdiction, value: T) -> None:
        self._by_prefix.setdefault(jurisdiction.prefix, []).append(value)

    def match(self, region_code: str) -> Iterator[T]:
        """Every value whose jurisdiction contains ``region_code``.

        ``region_code`` must already be validated; an unknown code simply matches nothing
        at the levels it does not have.
        """
        by_prefix = self._by_prefix
        for length in LEVEL_PREFIX_LENGTHS:
            values = by_prefix.get(region_code[:length])
            if values:
                yield from values

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_prefix.values())
