"""Schema registry state kept in the compacted ``_govhub.schemas`` topic.

Keys: ``schema/<id>`` → the schema; ``subject/<name>/<version>`` → the subject version.
Ids derive from the schema's canonical form, so any api replica registers the same schema
under the same id without coordination; a hash collision with a different schema is
refused (never silently aliased).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from hub.controlstate import CompactedTable
from hub.registry.schemas import AvroCodec, SchemaError, canonical, schema_id_for


class SchemaNotFound(KeyError):
    pass


class SubjectNotFound(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    schema: str


class SchemaRegistry:
    def __init__(self, table: CompactedTable) -> None:
        self._table = table
        self._codecs: dict[int, AvroCodec] = {}
        self._lock = threading.Lock()

    def register_schema(self, schema: str) -> int:
        """Store ``schema`` (no subject) and return its id; idempotent."""
        form = canonical(schema)
        schema_id = schema_id_for(form)
        stored = self._table.get(f"schema/{schema_id}")
        if stored is None:
            self._table.put(f"schema/{schema_id}", {"id": schema_id, "schema": schema})
        elif canonical(stored["schema"]) != form:
            raise SchemaError(f"schema id {schema_id} collides with a different schema")
        return schema_id

    def register(self, subject: str, schema: str) -> int:
        """Register ``schema`` under ``subject``; re-registering returns the same id."""
        schema_id = self.register_schema(schema)
        versions = self.versions(subject)
        for sv in versions:
            if sv.schema_id == schema_id:
                return schema_id
        version = (versions[-1].version + 1) if versions else 1
        self._table.put(
            f"subject/{subject}/{version}",
            {"subject": subject, "version": version, "id": schema_id},
        )
        return schema_id

    def schema(self, schema_id: int) -> str:
        row = self._table.get(f"schema/{schema_id}")
        if row is None:
            raise SchemaNotFound(schema_id)
        return str(row["schema"])

    def codec(self, schema_id: int) -> AvroCodec:
        with self._lock:
            codec = self._codecs.get(schema_id)
        if codec is None:
            codec = AvroCodec(self.schema(schema_id))
            with self._lock:
                self._codecs[schema_id] = codec
        return codec

    def subjects(self) -> list[str]:
        names = {k.split("/")[1] for k in self._table.items_keys() if k.startswith("subject/")}
        return sorted(names)

    def versions(self, subject: str) -> list[SubjectVersion]:
        rows = [
            row
            for key, row in self._table.items()
            if key.startswith(f"subject/{subject}/") and row.get("subject") == subject
        ]
        rows.sort(key=lambda r: int(r["version"]))
        return [
            SubjectVersion(subject, int(r["version"]), int(r["id"]), self.schema(int(r["id"])))
            for r in rows
        ]

    def version(self, subject: str, version: int | str) -> SubjectVersion:
        versions = self.versions(subject)
        if not versions:
            raise SubjectNotFound(subject)
        if version == "latest" or version == -1:
            return versions[-1]
        for sv in versions:
            if sv.version == int(version):
                return sv
        raise SubjectNotFound(f"{subject} version {version}")
