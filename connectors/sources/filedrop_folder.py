"""The drop folder: which files are ready, what identifies them, where they go afterwards."""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

IDENTITY_BYTES = 64 * 1024
# Partial uploads and editor lock files are never picked up.
_IGNORED_PREFIXES = (".", "~$", "~")
_IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".swp")


@dataclass(frozen=True, slots=True)
class DroppedFile:
    path: Path
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return self.path.name


def file_identity(path: Path, size: int) -> str:
    """Size plus a hash of the first block: a file re-dropped under the same name with other
    content is a new file, while moving or copying a file keeps its identity."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(IDENTITY_BYTES))
    return f"{size}-{digest.hexdigest()[:16]}"


class DropFolder:
    def __init__(
        self,
        folder: Path,
        pattern: str,
        done: Path,
        failed: Path,
        settle_s: float,
    ) -> None:
        self.folder = folder
        self.pattern = pattern
        self.done = done
        self.failed = failed
        self.settle_s = settle_s

    def prepare(self) -> None:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"drop folder {self.folder} does not exist")
        self.done.mkdir(parents=True, exist_ok=True)
        self.failed.mkdir(parents=True, exist_ok=True)

    def ready(self) -> list[DroppedFile]:
        """Files matching the pattern, untouched for ``settle_s`` (a copy still in progress
        keeps changing its mtime), oldest first."""
        now = time.time()
        found = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(_IGNORED_PREFIXES) or name.endswith(_IGNORED_SUFFIXES):
                    continue
                if not fnmatch.fnmatch(name, self.pattern):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if now - stat.st_mtime < self.settle_s:
                    continue
                found.append(DroppedFile(Path(entry.path), stat.st_size, stat.st_mtime))
        found.sort(key=lambda f: (f.mtime, f.name))
        return found

    def move_done(self, path: Path) -> Path:
        return _move(path, self.done)

    def move_failed(self, path: Path, reason: str) -> Path:
        target = _move(path, self.failed)
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        note = target.with_name(target.name + ".reason.txt")
        note.write_text(f"{stamp} {path.name}: {reason}\n", encoding="utf-8")
        return target


def _move(path: Path, folder: Path) -> Path:
    """Move into ``folder`` without overwriting an earlier file of the same name."""
    target = folder / path.name
    if target.exists():
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    os.replace(path, target)
    return target
