"""Writing the registry log: each record is read back by this replica before the writer
goes on, so a writer never decides on state its own index cannot see yet."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hub.controlstate import ControlStateError
from hub.registry.compatibility import Compatibility
from hub.registry.errors import RegistryUnavailable, SchemaIdCollision
from hub.registry.identity import SchemaIdentity
from hub.registry.index import RegistryIndex
from hub.registry.records import (
    LogTable,
    claim_key,
    config_key,
    deleted_key,
    erased_key,
    schema_key,
)

log = logging.getLogger(__name__)


def new_writer() -> str:
    return uuid.uuid4().hex


class RegistryLog:
    def __init__(self, table: LogTable, index: RegistryIndex, timeout: float) -> None:
        self._table = table
        self._index = index
        self._timeout = timeout

    def store_schema(self, identity: SchemaIdentity) -> bool:
        """Make sure the log holds the schema; True if this call wrote it."""
        schema_id, form = identity.schema_id, identity.form
        known = self._index.schema(schema_id)
        if known == form:
            return False
        if known is None:
            self.write(schema_key(schema_id), {"id": schema_id, "schema": form})
            known = self._index.schema(schema_id)
            if known is not None and known != form:
                # Another schema won the id first: write it again so that compaction, which
                # keeps the last record of a key, keeps the winner.
                self.write(schema_key(schema_id), {"id": schema_id, "schema": known})
        if known != form:
            raise SchemaIdCollision(
                f"Invalid schema: its id {schema_id} collides with a different registered "
                "schema; change the schema (a doc string is enough) and register it again"
            )
        return True

    def claim(self, subject: str, version: int, schema_id: int) -> str:
        """Bid for a version slot; returns the claim's writer id."""
        writer = new_writer()
        value = {"subject": subject, "version": version, "id": schema_id}
        self.write(claim_key(subject, version, writer), value, writer)
        return writer

    def withdraw(self, subject: str, version: int, writer: str) -> None:
        self.tombstone(claim_key(subject, version, writer))

    def mark_deleted(self, subject: str, version: int) -> None:
        self.write(deleted_key(subject, version), {"subject": subject, "version": version})

    def erase(self, subject: str, version: int) -> None:
        # The marker retires the slot first, so no claim left behind can take it over.
        self.write(erased_key(subject, version), {"subject": subject, "version": version})
        for writer in self._index.claim_writers(subject, version):
            self.withdraw(subject, version, writer)
        self.tombstone(deleted_key(subject, version))

    def set_level(self, subject: str | None, level: Compatibility | None) -> None:
        value = {"subject": subject, "compatibility": None if level is None else level.value}
        self.write(config_key(subject), value)

    def write(self, key: str, value: dict[str, Any], writer: str | None = None) -> None:
        """Append a record and wait until this replica's index has applied it."""
        writer = writer or new_writer()
        applied = self._index.expect(writer)
        try:
            self._table.put(key, {**value, "writer": writer}, self._timeout)
            if not applied.wait(self._timeout):
                raise RegistryUnavailable(f"registry record {key} not read back in time")
        except ControlStateError as exc:
            raise RegistryUnavailable(f"registry log unavailable: {exc}") from None
        finally:
            self._index.forget(writer)

    def tombstone(self, key: str) -> None:
        try:
            self._table.put(key, None, self._timeout)
        except ControlStateError as exc:  # a stale claim loses forever; only space is lost
            log.warning("could not remove registry record %s: %s", key, exc)
