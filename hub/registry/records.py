"""The records of the registry log, ``_govhub.schemas`` (compacted, one partition).

=============================================  =============================================
key                                            value
=============================================  =============================================
``schema/<id>``                                ``{"id", "schema", "writer"}``
``claim/<subject>/<version>/<writer>``         ``{"subject", "version", "id", "writer"}``
``deleted/<subject>/<version>``                ``{"subject", "version", "writer"}`` (soft)
``erased/<subject>/<version>``                 ``{"subject", "version", "writer"}`` (permanent)
``config`` / ``config/<subject>``              ``{"subject", "compatibility", "writer"}``
=============================================  =============================================

Subjects are percent-encoded in keys (a subject may contain ``/``). ``writer`` is a random id
per write, so a writer can tell its own write when it reads the log back. A claim's key holds
its writer id, so every claim is a key of its own that compaction never merges with another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote, unquote


class LogTable(Protocol):
    """The compacted-topic table the registry keeps its log in (``CompactedTable``)."""

    def put(self, key: str, value: Mapping[str, Any] | None, timeout: float = 10.0) -> None: ...

    def add_listener(self, listener: Callable[[str, dict[str, Any] | None], None]) -> None: ...

    def items(self) -> list[tuple[str, dict[str, Any]]]: ...


class Kind(StrEnum):
    SCHEMA = "schema"
    CLAIM = "claim"
    DELETED = "deleted"
    ERASED = "erased"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class LogKey:
    kind: Kind
    subject: str | None = None
    version: int | None = None
    writer: str | None = None
    schema_id: int | None = None


def _q(subject: str) -> str:
    return quote(subject, safe="")


def schema_key(schema_id: int) -> str:
    return f"schema/{schema_id}"


def claim_key(subject: str, version: int, writer: str) -> str:
    return f"claim/{_q(subject)}/{version}/{writer}"


def deleted_key(subject: str, version: int) -> str:
    return f"deleted/{_q(subject)}/{version}"


def erased_key(subject: str, version: int) -> str:
    return f"erased/{_q(subject)}/{version}"


def config_key(subject: str | None) -> str:
    return "config" if subject is None else f"config/{_q(subject)}"


def parse_key(key: str) -> LogKey | None:
    """The meaning of a log key, or ``None`` for keys this version does not know."""
    parts = key.split("/")
    try:
        kind = Kind(parts[0])
        if kind is Kind.SCHEMA and len(parts) == 2:
            return LogKey(kind, schema_id=int(parts[1]))
        if kind is Kind.CLAIM and len(parts) == 4 and parts[3]:
            return LogKey(kind, unquote(parts[1]), int(parts[2]), parts[3])
        if kind in (Kind.DELETED, Kind.ERASED) and len(parts) == 3:
            return LogKey(kind, unquote(parts[1]), int(parts[2]))
        if kind is Kind.CONFIG and len(parts) <= 2:
            return LogKey(kind, unquote(parts[1]) if len(parts) == 2 else None)
    except ValueError:
        return None
    return None


def writer_of(value: dict[str, Any] | None) -> str | None:
    writer = None if value is None else value.get("writer")
    return writer if isinstance(writer, str) else None
