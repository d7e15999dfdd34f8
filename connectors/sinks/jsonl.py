"""A JSON-lines file sink with exactly-once writes.

Records are appended to ``<path>``; the cursor goes to ``<path>.cursor`` together with the
data file's length after the write. On restart the data file is cut back to that length,
so a crash between the two writes neither loses nor repeats a record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from connectors.sinks.base import Cursor, DeliveredRecord, Sink, dumps
from connectors.sinks.state import CursorFile, cursor_doc, cursor_from_doc, open_at


class JsonlSinkConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    path: Path = Field(description="the JSON-lines file; its cursor goes to <path>.cursor")


class JsonlSink(Sink):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._state = CursorFile(path.with_name(path.name + ".cursor"))
        doc = self._state.read()
        self._file, _ = open_at(path, int(doc.get("size", 0)) if doc else 0)
        self.records_written = 0

    @classmethod
    def from_config(cls, name: str, config: JsonlSinkConfig) -> JsonlSink:
        return cls(config.path)

    def load_cursor(self) -> Cursor | None:
        doc = self._state.read()
        return None if doc is None else cursor_from_doc(doc, self._state.path)

    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        if records:
            self._file.write(b"".join(dumps(r.to_json_dict()) + b"\n" for r in records))
            self._file.flush()
            os.fsync(self._file.fileno())
        self._state.write({**cursor_doc(cursor), "size": self._file.tell()})
        self.records_written += len(records)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
