"""File-drop source (``type = "file"``): publishes the files departments drop into a folder.

CSV (UTF-8 or GBK/GB18030), JSON lines and XLSX, one file at a time, oldest first, streamed
row by row. A file is moved to ``done/`` only after Kafka acknowledged its last row, and to
``failed/`` (with a ``.reason.txt`` beside it) when it cannot be read at all.

Position = file name + identity (size and a hash of its first block) + row + byte offset,
so a restart resumes at the row after the last acknowledged one and a re-dropped file of the
same name is recognised as new. Record ids are ``<connector>:<file name>:<row>``. A batch
never spans two files, so the checkpoint always names the file being read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from connectors.base import Source, SourceRecord
from connectors.sources.filedrop_coerce import CoercionError, FieldType, RowMapper
from connectors.sources.filedrop_folder import DropFolder, DroppedFile, file_identity
from connectors.sources.formats import (
    Encoding,
    FileFormatError,
    Format,
    ResumePoint,
    Row,
    RowReader,
    format_of,
    open_reader,
)
from hub.config import ConfigError

log = logging.getLogger(__name__)

FILES = Counter(
    "govhub_connector_files_total",
    "Dropped files finished by the file source",
    ["connector", "outcome"],  # done | failed
)


class FileDropConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: Path = Field(description="the drop folder to watch")
    pattern: str = Field(default="*", description="file names to pick up (glob)")
    format: Literal["auto", "csv", "jsonl", "xlsx"] = Field(
        default="auto", description="auto: by extension (.csv .jsonl .xlsx)"
    )
    encoding: Encoding = Field(default="auto", description="CSV text: auto-detects UTF-8/GBK")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header_row: int = Field(default=1, ge=1, le=1000, description="row holding column names")
    sheet: str | None = Field(default=None, description="XLSX sheet name (default: the first)")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="file column → schema field; only mapped columns are published",
    )
    types: dict[str, FieldType] = Field(
        default_factory=dict, description="schema field → type to convert text to"
    )
    settle_s: float = Field(default=2.0, ge=0, description="skip files modified more recently")
    done_folder: Path | None = Field(default=None, description="default: <folder>/done")
    failed_folder: Path | None = Field(default=None, description="default: <folder>/failed")

    @field_validator("columns")
    @classmethod
    def _one_column_per_field(cls, v: dict[str, str]) -> dict[str, str]:
        targets = list(v.values())
        twice = sorted({f for f in targets if targets.count(f) > 1})
        if twice:
            raise ValueError(f"field(s) {twice} are mapped from more than one column")
        return v

    @field_validator("types")
    @classmethod
    def _typed_fields_are_mapped(
        cls, v: dict[str, FieldType], info: ValidationInfo
    ) -> dict[str, FieldType]:
        columns = info.data.get("columns") or {}
        unknown = sorted(set(v) - set(columns.values())) if columns else []
        if unknown:
            raise ValueError(f"{unknown} are not fields that `columns` maps to")
        return v


@dataclass
class _OpenFile:
    dropped: DroppedFile
    fid: str
    reader: RowReader
    rows: Iterator[Row]
    last: Row | None = None  # the last row handed out
    eof: bool = False
    broken: str | None = None  # why the rest of the file cannot be read


class FileDropSource(Source):
    def __init__(self, name: str, config: FileDropConfig) -> None:
        self.name = name
        self.config = config
        folder = config.folder
        self.folder = DropFolder(
            folder,
            config.pattern,
            config.done_folder or folder / "done",
            config.failed_folder or folder / "failed",
            config.settle_s,
        )
        self._mapper = RowMapper(config.columns, config.types)
        self._current: _OpenFile | None = None
        self._resume: Mapping[str, Any] | None = None
        # Rows handed to the runner and rows it acknowledged: read() runs in a worker
        # thread while ack() runs on the event loop, so each counter has one writer.
        self._handed = 0
        self._acked = 0
        self._queued_bytes = 0
        self._stuck: set[Path] = set()  # failed files that could not be moved aside

    @classmethod
    def from_config(cls, name: str, config: FileDropConfig) -> FileDropSource:
        return cls(name, config)

    # -- contract ----------------------------------------------------------------------
    async def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        try:
            self.folder.prepare()
        except (FileNotFoundError, PermissionError) as exc:
            raise ConfigError(f"source.folder: {exc}") from None
        self._resume = checkpoint if checkpoint and "fid" in checkpoint else None

    async def read(self, max_records: int) -> list[SourceRecord]:
        return await asyncio.to_thread(self._read, max_records)

    async def ack(self, records: Sequence[SourceRecord]) -> None:
        self._acked += len(records)

    async def close(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.reader.close()

    def lag(self) -> float | None:
        current = self._current
        here = current.reader.remaining_bytes(current.last) if current is not None else 0
        return float(here + self._queued_bytes)

    # -- reading -----------------------------------------------------------------------
    def _read(self, max_records: int) -> list[SourceRecord]:
        while True:
            current = self._current or self._open_next()
            if current is None:
                return []
            if current.eof or current.broken:
                if self._handed > self._acked:
                    return []  # the file's last rows are not in Kafka yet
                self._finish(current)
                continue
            batch = self._take(current, max_records)
            if batch:
                self._handed += len(batch)
                return batch

    def _take(self, current: _OpenFile, max_records: int) -> list[SourceRecord]:
        # The source's hot loop: one record per row, no more calls than needed.
        out: list[SourceRecord] = []
        append = out.append
        name, fid, file_name = self.name, current.fid, current.dropped.name
        prefix = f"{name}:{file_name}:"
        map_cells, map_object = self._mapper.map_cells, self._mapper.map_object
        row: Row | None = None
        try:
            for row in current.rows:
                number = row.number
                position = {"file": file_name, "fid": fid, "row": number, "offset": row.offset}
                record_id = f"{prefix}{number}"
                cells = row.cells
                if row.error is not None or cells is None:
                    error = row.error or "unreadable row"
                    append(SourceRecord(record_id, None, position, b"", error))
                else:
                    try:
                        value = map_cells(cells) if isinstance(cells, list) else map_object(cells)
                    except CoercionError as exc:
                        error = f"row {number}: {exc}"
                        append(SourceRecord(record_id, None, position, b"", error))
                    else:
                        append(SourceRecord(record_id, value, position))
                if len(out) >= max_records:
                    current.last = row
                    return out
            current.eof = True
        except (FileFormatError, OSError) as exc:
            current.broken = str(exc)
        if row is not None:
            current.last = row
        return out

    def _open_next(self) -> _OpenFile | None:
        ready = self.folder.ready()
        resume, self._resume = self._resume, None
        if resume is not None:  # the file of the checkpoint first, whatever its age
            ready.sort(key=lambda f: f.name != resume.get("file"))
        ready = [f for f in ready if f.path not in self._stuck]
        for index, dropped in enumerate(ready):
            opened = self._open(dropped, resume)
            if opened is not None:
                self._queued_bytes = sum(f.size for f in ready[index + 1 :])
                self._current = opened
                return opened
        self._queued_bytes = 0
        return None

    def _open(self, dropped: DroppedFile, resume: Mapping[str, Any] | None) -> _OpenFile | None:
        path = dropped.path
        try:
            fid = file_identity(path, dropped.size)
            point = None
            if resume is not None and resume.get("file") == dropped.name:
                if resume.get("fid") == fid:
                    point = ResumePoint(int(resume.get("row", 0)), int(resume.get("offset", 0)))
                else:
                    log.warning(
                        "%s was replaced since the checkpoint: reading it from the start",
                        dropped.name,
                        extra={"connector": self.name},
                    )
            fmt: Format = format_of(path) if self.config.format == "auto" else self.config.format
            reader = open_reader(
                path,
                fmt,
                encoding=self.config.encoding,
                delimiter=self.config.delimiter,
                header_row=self.config.header_row,
                sheet=self.config.sheet,
                resume=point,
            )
        except FileNotFoundError:
            return None  # gone between the scan and now
        except (FileFormatError, OSError) as exc:
            self._fail(path, str(exc))
            return None
        try:
            if fmt != "jsonl":
                self._mapper.bind(reader.header)
        except FileFormatError as exc:
            reader.close()
            self._fail(path, str(exc))
            return None
        log.info(
            "reading %s%s",
            dropped.name,
            f" from row {point.row + 1}" if point else "",
            extra={"connector": self.name},
        )
        return _OpenFile(dropped, fid, reader, reader.rows())

    def _finish(self, current: _OpenFile) -> None:
        self._current = None
        current.reader.close()
        path = current.dropped.path
        if current.broken:
            last = current.last.number if current.last is not None else None
            done = f"; rows up to {last} were published" if last else ""
            self._fail(path, current.broken + done)
            return
        try:
            target = self.folder.move_done(path)
        except FileNotFoundError:
            log.warning("%s vanished before it could be moved", path.name)
            return
        FILES.labels(self.name, "done").inc()
        log.info("%s done, moved to %s", path.name, target, extra={"connector": self.name})

    def _fail(self, path: Path, reason: str) -> None:
        FILES.labels(self.name, "failed").inc()
        log.error("%s cannot be read: %s", path.name, reason, extra={"connector": self.name})
        try:
            self.folder.move_failed(path, reason)
        except OSError as exc:
            self._stuck.add(path)
            log.error("%s could not be moved aside: %s", path.name, exc)
