"""JSON-lines file source: one JSON object per line.

Position = (file, line number). Record ids are ``<connector>:<file name>:<line>``, so a
replay after a crash carries the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Source, SourceRecord


class JsonlFileConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    path: Path = Field(description="the JSON-lines file to publish")


class JsonlFileSource(Source):
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._file: IO[bytes] | None = None
        self._line = 0

    @classmethod
    def from_config(cls, name: str, config: JsonlFileConfig) -> JsonlFileSource:
        return cls(name, config.path)

    async def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"source file {self.path} does not exist")
        self._file = open(self.path, "rb")  # noqa: SIM115 - held for the source's lifetime
        self._line = 0
        done = 0
        if checkpoint and checkpoint.get("file") == self.path.name:
            done = int(checkpoint.get("line", 0))
        while self._line < done and self._file.readline():
            self._line += 1

    async def read(self, max_records: int) -> list[SourceRecord]:
        if self._file is None:
            raise RuntimeError("source not connected")
        out: list[SourceRecord] = []
        while len(out) < max_records:
            raw = self._file.readline()
            if not raw:
                break
            if not raw.endswith(b"\n"):
                # A line still being written: read it again next time.
                self._file.seek(-len(raw), 1)
                break
            self._line += 1
            if not raw.strip():
                continue
            record_id = f"{self.name}:{self.path.name}:{self._line}"
            position = {"file": self.path.name, "line": self._line}
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                out.append(SourceRecord(record_id, None, position, raw, f"invalid JSON: {exc}"))
                continue
            if not isinstance(value, dict):
                out.append(SourceRecord(record_id, None, position, raw, "line is not an object"))
                continue
            out.append(SourceRecord(record_id, value, position, raw))
        return out

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
