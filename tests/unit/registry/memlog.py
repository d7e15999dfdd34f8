"""A single-partition compacted log in memory, and replicas that read it like Kafka tables.

A replica sees other replicas' records only when it reads: on its own ``put`` (which reads
up to its own record, as ``CompactedTable.put`` does) or on ``catch_up``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

Listener = Callable[[str, dict[str, Any] | None], None]


class MemoryLog:
    def __init__(self, records: list[tuple[str, dict[str, Any] | None]] | None = None) -> None:
        self.records = list(records or [])
        self.lock = threading.Lock()

    def append(self, key: str, value: Mapping[str, Any] | None) -> int:
        with self.lock:
            self.records.append((key, None if value is None else dict(value)))
            return len(self.records) - 1

    def compacted(self) -> MemoryLog:
        """What a fully cleaned topic holds: the last record per key, tombstones removed."""
        last = {key: offset for offset, (key, _) in enumerate(self.records)}
        kept = [
            (key, value)
            for offset, (key, value) in enumerate(self.records)
            if last[key] == offset and value is not None
        ]
        return MemoryLog(kept)


class Replica:
    """The part of ``CompactedTable`` the registry uses, over a :class:`MemoryLog`."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.rows: dict[str, dict[str, Any]] = {}
        self.listeners: list[Listener] = []
        self.position = 0
        self._reading = threading.Lock()

    def put(self, key: str, value: Mapping[str, Any] | None, timeout: float = 10.0) -> None:
        offset = self.log.append(key, value)
        self.catch_up(offset + 1)

    def catch_up(self, until: int | None = None) -> None:
        with self._reading:
            end = len(self.log.records) if until is None else until
            while self.position < end:
                key, value = self.log.records[self.position]
                self.position += 1
                if value is None:
                    self.rows.pop(key, None)
                else:
                    self.rows[key] = value
                for listener in self.listeners:
                    listener(key, value)

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.rows.items())


def loaded(log: MemoryLog) -> Replica:
    """A replica that has read the whole log, like a started ``CompactedTable``."""
    replica = Replica(log)
    replica.catch_up()
    return replica
