"""What every end-to-end benchmark run sets up and takes down the same way: a broker (the
one given, or a fresh local one), a scratch folder, and the clock for ``seconds``."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.bench import emit
from hub.bench.all import discard, local_kafka
from hub.bench.exchange import _broker_pid
from hub.localkafka import LocalKafka


@dataclass
class BenchSession:
    bootstrap: str
    tmp: Path
    local: LocalKafka | None  # the cluster started for this run, if any
    started: float

    @property
    def broker_pid(self) -> int | None:
        """The broker's process (for its CPU time), when it runs on this machine."""
        return _broker_pid(self.local, self.bootstrap)

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 1)

    def finish(self, result: dict[str, Any], path: Path | None) -> int:
        """Stamp the run's duration on ``result`` and write it out."""
        result["seconds"] = self.seconds()
        emit(result, path)
        return 0


@contextmanager
def bench_session(name: str, bootstrap: str | None) -> Iterator[BenchSession]:
    """``bootstrap``, or a local cluster started for the run (and deleted after it: a full
    run leaves gigabytes), with a scratch folder removed after it too."""
    tmp = Path(tempfile.mkdtemp(prefix=f"govhub-bench-{name}-"))
    local = None
    try:
        if not bootstrap:
            local = local_kafka(name)
            bootstrap = local.up()
        yield BenchSession(bootstrap, tmp, local, time.perf_counter())
    finally:
        if local is not None:
            discard(local)
        shutil.rmtree(tmp, ignore_errors=True)
