"""A JSON-lines file sink with exactly-once writes.

Records are appended to ``<path>``; the cursor goes to ``<path>.cursor`` together with the
data file's length after the write. On restart the data file is cut back to that length,
so a crash between the two writes neither loses nor repeats a record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from connectors.sinks.base import Cursor, DeliveredRecord, Sink
from hub.registry.schemas import json_default


class JsonlSink(Sink):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cursor_path = path.with_name(path.name + ".cursor")
        path.parent.mkdir(parents=True, exist_ok=True)
        cursor_doc = self._read_cursor_doc()
        size = int(cursor_doc["size"]) if cursor_doc else 0
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the sink's lifetime
        if self._file.tell() != size:
            self._file.truncate(size)
            self._file.seek(size)
        self.records_written = 0

    def _read_cursor_doc(self) -> dict[str, Any] | None:
        try:
            doc = orjson.loads(self._cursor_path.read_bytes())
        except FileNotFoundError:
            return None
        return doc if isinstance(doc, dict) else None

    def load_cursor(self) -> Cursor | None:
        doc = self._read_cursor_doc()
        if doc is None:
            return None
        return Cursor(int(doc["partition"]), int(doc["next_offset"]), dict(doc["sequence"]))

    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        if records:
            self._file.write(
                b"".join(
                    orjson.dumps(r.to_json_dict(), default=json_default) + b"\n" for r in records
                )
            )
        self._file.flush()
        os.fsync(self._file.fileno())
        doc = {
            "partition": cursor.partition,
            "next_offset": cursor.next_offset,
            "sequence": cursor.sequence,
            "size": self._file.tell(),
        }
        tmp = self._cursor_path.with_name(self._cursor_path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, self._cursor_path)
        self.records_written += len(records)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
