"""Durable sink state on the local disk: cursor documents and append-only data files.

A file sink appends records, then replaces its cursor document atomically (temporary file,
fsync, rename, fsync of the folder). The document carries the data file's length after the
write, so a restart cuts off whatever a crash left after the last good cursor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import orjson

from connectors.sinks.base import Cursor


class SinkStateError(RuntimeError):
    """The sink's stored state disagrees with its files; the message says how to fix it."""


class CursorFile:
    """A small JSON document replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise SinkStateError(f"cursor file {self.path} is damaged ({exc})") from None
        if not isinstance(doc, dict):
            raise SinkStateError(f"cursor file {self.path} does not hold a JSON object")
        return doc

    def write(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cursor_doc(cursor: Cursor) -> dict[str, Any]:
    return {
        "partition": cursor.partition,
        "next_offset": cursor.next_offset,
        "sequence": cursor.sequence,
    }


def cursor_from_doc(doc: dict[str, Any], where: Path | str) -> Cursor:
    try:
        return Cursor(int(doc["partition"]), int(doc["next_offset"]), dict(doc["sequence"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise SinkStateError(f"cursor in {where} is incomplete ({exc})") from None


def open_at(path: Path, size: int) -> tuple[IO[bytes], bool]:
    """``path`` opened for appending at ``size`` bytes; True when the file starts empty.

    A longer file is cut back (a crash after appending, before the cursor). A missing or
    empty file is taken as moved away by the operator: a fresh file starts. A file that is
    shorter but not empty has lost records, and that is never papered over.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    actual = path.stat().st_size if path.exists() else 0
    if 0 < actual < size:
        raise SinkStateError(
            f"{path} has {actual} bytes but the sink wrote {size}: the file was cut or replaced. "
            f"Restore it, or move it and its cursor file away to start a new one"
        )
    f = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 - held by the sink
    keep = size if actual >= size else 0
    f.truncate(keep)
    f.seek(keep)
    return f, keep == 0
