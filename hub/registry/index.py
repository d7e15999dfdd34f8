"""The registry's in-memory state, built by applying the log's records in log order.

Every replica (api, router, connector) applies the same records in the same order with the
same rules, so all of them agree:

- ``schema/<id>``: the first schema seen under an id keeps it; a different schema written
  later under the same id (a hash collision) is ignored. A record whose text does not hash to
  its id is ignored.
- claims: the winner of a (subject, version) slot is the *first live claim in log order*;
  later claims of the slot lose. Claims are never rewritten (their key holds the writer id),
  so compaction keeps their order and the winner stays the winner; losers are tombstoned by
  their writers, which never changes a winner.
- ``erased/…`` retires a slot for good, whatever claims it has; ``deleted/…`` marks a version
  soft-deleted. Neither depends on order.

All lookups are dictionary hits: the per-subject views are rebuilt when a subject's records
change (rare), never per read.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from hub.registry.compatibility import Compatibility
from hub.registry.identity import schema_id_of
from hub.registry.records import Kind, LogKey, LogTable, parse_key, writer_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """One consistent view of a subject, for deciding a registration."""

    existing: int | None  # the live version that already holds the schema
    next_version: int
    live: list[tuple[int, str]]  # (version, schema) of the live versions, oldest first


@dataclass(slots=True)
class _Subject:
    claims: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # (writer, id)
    deleted: set[int] = field(default_factory=set)
    erased: set[int] = field(default_factory=set)
    config: Compatibility | None = None
    # derived from the above by _rebuild
    winners: dict[int, int] = field(default_factory=dict)  # version -> schema id
    every: tuple[int, ...] = ()  # versions, soft-deleted included, ascending
    live: tuple[int, ...] = ()  # versions not soft-deleted, ascending
    live_by_id: dict[int, int] = field(default_factory=dict)  # schema id -> latest live version
    any_by_id: dict[int, int] = field(default_factory=dict)  # same, soft-deleted included
    next_version: int = 1


class RegistryIndex:
    """Materialised registry state; ``apply`` is the table listener."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schemas: dict[int, str] = {}
        self._subjects: dict[str, _Subject] = {}
        self._usages: dict[int, dict[tuple[str, int], bool]] = {}  # id -> {(s, v): deleted}
        self._global: Compatibility | None = None
        self._waiters: dict[str, threading.Event] = {}
        self._subject_lists: dict[bool, list[str]] = {}

    # -- applying the log ------------------------------------------------------------------
    def attach(self, table: LogTable) -> None:
        """Follow ``table``: the rows it already holds, then every change.

        Rows already loaded are applied in the table's key order, which is the order keys
        first appeared in the log; changes that race with this arrive through the listener
        afterwards and are idempotent.
        """
        with self._lock:
            table.add_listener(self.apply)
            for key, value in table.items():
                self._apply_record(key, value)

    def apply(self, key: str, value: dict[str, Any] | None) -> None:
        with self._lock:
            event = self._apply_record(key, value)
        if event is not None:
            event.set()

    def _apply_record(self, key: str, value: dict[str, Any] | None) -> threading.Event | None:
        parsed = parse_key(key)
        if parsed is None:
            return None
        try:
            self._apply(parsed, value)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring malformed registry record %s: %s", key, exc)
        writer = writer_of(value)
        return self._waiters.get(writer) if writer is not None else None

    def _apply(self, key: LogKey, value: dict[str, Any] | None) -> None:
        if key.kind is Kind.SCHEMA:
            self._apply_schema(key, value)
        elif key.kind is Kind.CONFIG:
            raw = None if value is None else value.get("compatibility")
            level = None if raw is None else Compatibility(str(raw))
            if key.subject is None:
                self._global = level
            else:
                self._subject(key.subject).config = level
        else:
            assert key.subject is not None and key.version is not None
            if value is not None and (
                value["subject"] != key.subject or int(value["version"]) != key.version
            ):
                raise ValueError("subject or version differs from the key")
            state = self._subject(key.subject)
            if key.kind is Kind.CLAIM:
                assert key.writer is not None
                self._apply_claim(state, key.version, key.writer, value)
            elif key.kind is Kind.DELETED:
                (state.deleted.add if value is not None else state.deleted.discard)(key.version)
            else:
                (state.erased.add if value is not None else state.erased.discard)(key.version)
            self._rebuild(key.subject, state)

    def _apply_schema(self, key: LogKey, value: dict[str, Any] | None) -> None:
        if value is None:
            return  # schemas stay: data in topics may still need them
        schema_id, form = int(value["id"]), value["schema"]
        if (
            not isinstance(form, str)
            or schema_id != key.schema_id
            or schema_id_of(form) != schema_id
        ):
            raise ValueError("schema text does not hash to its id")
        known = self._schemas.get(schema_id)
        if known is None:
            self._schemas[schema_id] = form
        elif known != form:
            log.error(
                "schema id %d: a different schema collides with it; the first one stays", schema_id
            )

    @staticmethod
    def _apply_claim(
        state: _Subject, version: int, writer: str, value: dict[str, Any] | None
    ) -> None:
        slot = state.claims.setdefault(version, [])
        if value is None:
            slot[:] = [claim for claim in slot if claim[0] != writer]
            if not slot:
                del state.claims[version]
        elif all(w != writer for w, _ in slot):
            slot.append((writer, int(value["id"])))

    def _subject(self, name: str) -> _Subject:
        state = self._subjects.get(name)
        if state is None:
            state = self._subjects[name] = _Subject()
        return state

    def _rebuild(self, name: str, state: _Subject) -> None:
        for version, schema_id in state.winners.items():
            uses = self._usages.get(schema_id)
            if uses is not None:
                uses.pop((name, version), None)
                if not uses:
                    del self._usages[schema_id]
        state.winners = {
            version: slot[0][1]
            for version, slot in sorted(state.claims.items())
            if slot and version not in state.erased
        }
        state.every = tuple(state.winners)
        state.live = tuple(v for v in state.every if v not in state.deleted)
        state.any_by_id = {sid: v for v, sid in state.winners.items()}
        state.live_by_id = {state.winners[v]: v for v in state.live}
        state.next_version = max((*state.winners, *state.erased, 0)) + 1
        for version, schema_id in state.winners.items():
            self._usages.setdefault(schema_id, {})[(name, version)] = version in state.deleted
        self._subject_lists.clear()

    # -- waiting for one's own writes ------------------------------------------------------
    def expect(self, writer: str) -> threading.Event:
        """An event set once a record written by ``writer`` has been applied."""
        event = threading.Event()
        with self._lock:
            self._waiters[writer] = event
        return event

    def forget(self, writer: str) -> None:
        with self._lock:
            self._waiters.pop(writer, None)

    # -- reads -----------------------------------------------------------------------------
    def schema(self, schema_id: int) -> str | None:
        return self._schemas.get(schema_id)

    def version(self, subject: str, version: int, deleted: bool = False) -> SubjectVersion | None:
        with self._lock:
            state = self._subjects.get(subject)
            if state is None:
                return None
            schema_id = state.winners.get(version)
            if schema_id is None:
                return None
            is_deleted = version in state.deleted
            form = self._schemas.get(schema_id)
        if form is None or (is_deleted and not deleted):
            return None
        return SubjectVersion(subject, version, schema_id, form, is_deleted)

    def versions(self, subject: str, deleted: bool = False) -> tuple[int, ...]:
        with self._lock:
            state = self._subjects.get(subject)
            if state is None:
                return ()
            return state.every if deleted else state.live

    def latest(self, subject: str, deleted: bool = False) -> SubjectVersion | None:
        numbers = self.versions(subject, deleted)
        return self.version(subject, numbers[-1], deleted) if numbers else None

    def find(self, subject: str, schema_id: int, deleted: bool = False) -> int | None:
        """The latest version of ``subject`` that holds ``schema_id``."""
        with self._lock:
            state = self._subjects.get(subject)
            if state is None:
                return None
            return (state.any_by_id if deleted else state.live_by_id).get(schema_id)

    def live_forms(self, subject: str) -> list[tuple[int, str]]:
        """(version, schema) of every live version, oldest first (compatibility input)."""
        with self._lock:
            return self._live_forms(self._subjects.get(subject))

    def _live_forms(self, state: _Subject | None) -> list[tuple[int, str]]:
        if state is None:
            return []
        return [
            (v, self._schemas[state.winners[v]])
            for v in state.live
            if state.winners[v] in self._schemas
        ]

    def plan(self, subject: str, schema_id: int) -> ClaimPlan:
        """Existing version, next version and live versions, all from the same moment: a
        writer that decided "absent" from one view and "next" from a later one could give
        one schema two versions."""
        with self._lock:
            state = self._subjects.get(subject)
            if state is None:
                return ClaimPlan(None, 1, [])
            existing = state.live_by_id.get(schema_id)
            return ClaimPlan(existing, state.next_version, self._live_forms(state))

    def subjects(self, deleted: bool = False) -> list[str]:
        with self._lock:
            cached = self._subject_lists.get(deleted)
            if cached is None:
                cached = self._subject_lists[deleted] = sorted(
                    name
                    for name, state in self._subjects.items()
                    if (state.every if deleted else state.live)
                )
            return list(cached)

    def usages(self, schema_id: int, deleted: bool = False) -> list[tuple[str, int]]:
        with self._lock:
            uses = self._usages.get(schema_id, {})
            return sorted(sv for sv, is_deleted in uses.items() if deleted or not is_deleted)

    def next_version(self, subject: str) -> int:
        with self._lock:
            state = self._subjects.get(subject)
            return 1 if state is None else state.next_version

    def winner(self, subject: str, version: int) -> tuple[str, int] | None:
        """(writer, schema id) of the claim that holds the slot, if any."""
        with self._lock:
            state = self._subjects.get(subject)
            if state is None or version in state.erased:
                return None
            slot = state.claims.get(version)
            return slot[0] if slot else None

    def claim_writers(self, subject: str, version: int) -> list[str]:
        with self._lock:
            state = self._subjects.get(subject)
            slot = [] if state is None else state.claims.get(version, [])
            return [writer for writer, _ in slot]

    def is_deleted(self, subject: str, version: int) -> bool:
        with self._lock:
            state = self._subjects.get(subject)
            return state is not None and version in state.deleted

    def config(self, subject: str | None) -> Compatibility | None:
        with self._lock:
            if subject is None:
                return self._global
            state = self._subjects.get(subject)
            return None if state is None else state.config

    def schema_count(self) -> int:
        return len(self._schemas)

    def subject_count(self) -> int:
        return len(self.subjects())
