"""A one-line progress indicator for long commands, on stderr and only on a terminal.

``with Progress() as p: p.update("fetching jars")`` redraws one line with the step and
the elapsed time every half second; on exit the line is cleared. Off a terminal (CI,
pipes, ``--json``) it prints nothing, so scripts see clean output.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

FRAMES = "|/-\\"


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self._stream.isatty()
        self._step = ""
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, step: str) -> None:
        self._step = step
        self._draw()

    def _draw(self, frame: int = 0) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        line = f"{FRAMES[frame % len(FRAMES)]} {self._step} ({elapsed:.0f} s)"
        self._stream.write("\r" + line[:100].ljust(100))
        self._stream.flush()

    def _run(self) -> None:
        frame = 0
        while not self._stop.wait(0.5):
            frame += 1
            self._draw(frame)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self.enabled:
            self._stream.write("\r" + " " * 100 + "\r")
            self._stream.flush()
