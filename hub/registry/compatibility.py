"""Compatibility levels, decided by the ``avro`` package's reader/writer checker.

BACKWARD: the new schema reads data written with the previous one. FORWARD: the previous
schema reads data written with the new one. FULL: both. The plain levels compare with the
latest live version, the ``_TRANSITIVE`` ones with every live version.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from enum import StrEnum

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from hub.registry.errors import InvalidCompatibilityLevel
from hub.registry.identity import parse_avro


class Compatibility(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> Compatibility:
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                pass
        raise InvalidCompatibilityLevel(
            f"Invalid compatibility level {value!r}; valid values are {', '.join(cls)}"
        )

    @property
    def transitive(self) -> bool:
        return self.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = Compatibility.BACKWARD


@functools.lru_cache(maxsize=1024)
def _parsed(form: str) -> avro.schema.Schema:
    return parse_avro(form)


def _problems(reader: str, writer: str, label: str) -> list[str]:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(_parsed(reader), _parsed(writer))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted(i.value for i in result.incompatibilities)) or "incompatible"
    where = ", ".join(sorted(result.locations))
    what = ", ".join(sorted(result.messages))
    return [f"{label}: {kinds} at {where} ({what})"]


def incompatibilities(
    candidate: str, previous: Sequence[tuple[int, str]], level: Compatibility
) -> list[str]:
    """Why ``candidate`` may not follow ``previous`` ((version, form), oldest first) under
    ``level``; an empty list means compatible. Which versions to pass is the caller's choice:
    see :func:`versions_to_check`."""
    if level is Compatibility.NONE:
        return []
    problems: list[str] = []
    for version, form in previous:
        if level.backward:
            problems += _problems(
                candidate, form, f"the new schema cannot read data written with version {version}"
            )
        if level.forward:
            problems += _problems(
                form, candidate, f"version {version} cannot read data written with the new schema"
            )
    return problems


def versions_to_check(
    live: Sequence[tuple[int, str]], level: Compatibility
) -> Sequence[tuple[int, str]]:
    """The live versions a new registration is compared with under ``level``."""
    if level is Compatibility.NONE or not live:
        return ()
    return live if level.transitive else live[-1:]
