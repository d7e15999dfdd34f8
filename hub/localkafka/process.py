"""Broker processes: detached start, PID files, and telling our broker from a stranger.

A PID file alone proves little: the process may be gone, or its PID reused by another
program. A PID counts as our node only while its command line runs ``kafka.Kafka`` with
that node's server.properties, so nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hub.localkafka.errors import LocalKafkaError

KAFKA_MAIN = "kafka.Kafka"
PROC = Path("/proc")

# Lines that say nothing in an error message: Java stack frames and our own "# " notes.
_NOISE = re.compile(r"^(at |\.\.\. \d+ more|# )")
# The shell starts the JVM in the background and prints its PID, then exits: the JVM is
# re-parented to init, so it never lingers as our zombie and outlives the caller.
_LAUNCH = 'log="$1"; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


def read_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file``, or None when it is missing or garbled."""
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid(pid_file: Path, pid: int) -> None:
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(pid_file)


def command_line(pid: int) -> list[str] | None:
    """The arguments of a running (not zombie) process, or None when there is none."""
    if PROC.is_dir():
        try:
            stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
            raw = (PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        state = stat.rpartition(")")[2].split()[:1]
        if not raw or state in (["Z"], ["X"]):
            return None
        return raw.decode(errors="replace").rstrip("\0").split("\0")
    try:  # no /proc (macOS): ask ps; one string, good enough to match our arguments
        out = subprocess.run(
            ["ps", "-o", "stat=,command=", "-p", str(pid)],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    ps_state, _, command = out.stdout.strip().partition(" ")
    if out.returncode != 0 or not command or ps_state.startswith("Z"):
        return None
    return command.split()


def is_node_process(pid: int, properties: Path) -> bool:
    """True when ``pid`` is a live Kafka server started with ``properties``."""
    args = command_line(pid)
    return args is not None and KAFKA_MAIN in args and str(properties) in args


def find_node_process(properties: Path) -> int | None:
    """Search /proc for a Kafka server started with ``properties`` (lost PID file)."""
    if not PROC.is_dir():
        return None
    for entry in PROC.iterdir():
        if entry.name.isdigit() and is_node_process(int(entry.name), properties):
            return int(entry.name)
    return None


def start_detached(command: Sequence[str], log: Path, cwd: Path) -> int:
    """Start ``command`` in its own session, output appended to ``log``; return its PID."""
    launcher = subprocess.Popen(
        ["/bin/sh", "-c", _LAUNCH, "sh", str(log), *command],
        cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    out, _ = launcher.communicate(timeout=30)
    text = out.decode().strip()
    if launcher.returncode != 0 or not text.isdigit():
        raise LocalKafkaError(f"could not start {command[0]} (launcher said {text!r}); see {log}")
    return int(text)


def signal_process(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def stop_processes(pids: dict[int, Path], timeout: float) -> list[int]:
    """SIGTERM every PID still running its properties file, SIGKILL what outlives ``timeout``.

    ``pids`` maps PID to the properties file that identifies it. Returns the PIDs that
    needed SIGKILL.
    """
    ours = {pid: props for pid, props in pids.items() if is_node_process(pid, props)}
    for pid in ours:
        signal_process(pid, signal.SIGTERM)
    remaining = _wait_gone(ours, time.monotonic() + timeout)
    for pid in remaining:
        signal_process(pid, signal.SIGKILL)
    leftover = _wait_gone({pid: ours[pid] for pid in remaining}, time.monotonic() + 10.0)
    if leftover:
        raise LocalKafkaError(f"processes {sorted(leftover)} survived SIGKILL; check them by hand")
    return sorted(remaining)


def _wait_gone(pids: dict[int, Path], deadline: float) -> list[int]:
    alive = dict(pids)
    while alive:
        alive = {pid: props for pid, props in alive.items() if is_node_process(pid, props)}
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return sorted(alive)


def tail(path: Path, lines: int = 5, max_bytes: int = 64 * 1024) -> list[str]:
    """The last telling lines of a log: no blanks, no Java stack frames, no "# " notes."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return []
    text = (line.strip() for line in data.decode(errors="replace").splitlines())
    return [line for line in text if line and not _NOISE.match(line)][-lines:]
