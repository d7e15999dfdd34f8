"""One node of the local cluster: its files, its storage format, its JVM start."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.localkafka.config import ClusterLayout, render_log4j2, render_server_properties
from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.jvm import classpath, heap_options
from hub.localkafka.process import start_detached, tail, write_pid

FORMAT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class NodeFiles:
    """The files of node ``node_id`` in ``<state_dir>/node-<id>/``."""

    node_id: int
    root: Path

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def log(self) -> Path:
        """JVM stdout/stderr: warnings, errors, crashes."""
        return self.root / "kafka.log"

    @property
    def server_log(self) -> Path:
        """The broker's log4j log, info and up."""
        return self.root / "server.log"

    @property
    def exporter_config(self) -> Path:
        """Rules of the JMX exporter agent (broker metrics), when it is attached."""
        return self.root / "jmx-exporter.yaml"

    @property
    def format_log(self) -> Path:
        return self.root / "format.log"

    @property
    def formatted(self) -> bool:
        return (self.data / "meta.properties").is_file()

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the node's output, on one line, for error messages."""
        last = tail(self.log, lines) or tail(self.server_log, lines)
        return " | ".join(last) if last else "log is empty"


def write_config(
    files: NodeFiles, layout: ClusterLayout, heap_mb: int, extra: Mapping[str, str]
) -> None:
    files.data.mkdir(parents=True, exist_ok=True)
    files.properties.write_text(
        render_server_properties(layout, files.node_id, files.data, heap_mb, extra),
        encoding="utf-8",
    )
    files.log4j.write_text(render_log4j2(files.server_log), encoding="utf-8")


def format_storage(
    nodes: Sequence[NodeFiles],
    java: str,
    libs: Path,
    cluster_id: str,
    extra_args: Sequence[str] = (),
) -> None:
    """Format the KRaft storage of new nodes, in parallel (each one is a JVM start).

    ``extra_args``: more StorageTool arguments, e.g. ``--add-scram`` in secure mode.
    """
    jobs = []
    for files in nodes:
        command = [
            java, "-Xmx256m", f"-Dlog4j2.configurationFile={files.log4j}",
            "-cp", classpath(libs), "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(files.properties), "--ignore-formatted",
            *extra_args,
        ]  # fmt: skip
        with files.format_log.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command, cwd=files.root, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        jobs.append((files, process))
    failed = []
    for files, process in jobs:
        try:
            code = process.wait(timeout=FORMAT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code != 0:
            failed.append(files)
    if failed:
        files = failed[0]
        last = " | ".join(tail(files.format_log, 3)) or "no output"
        raise LocalKafkaError(
            f"formatting storage of node {files.node_id} failed: {last}; see {files.format_log}"
        )


def launch(
    files: NodeFiles, java: str, libs: Path, heap_mb: int, jvm_options: Sequence[str] = ()
) -> int:
    """Start the node's JVM detached, record its PID, and return it."""
    command = [
        java, *heap_options(heap_mb), *jvm_options,
        f"-Dlog4j2.configurationFile={files.log4j}",
        "-cp", classpath(libs), "kafka.Kafka", str(files.properties),
    ]  # fmt: skip
    with files.log.open("a", encoding="utf-8") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} starting node {files.node_id}\n")
    pid = start_detached(command, files.log, files.root)
    write_pid(files.pid_file, pid)
    return pid
