"""A real Apache Kafka cluster in KRaft mode on loopback ports, run from Maven jars.

One or three combined broker+controller nodes live under a state folder::

    <state_dir>/cluster.json             cluster id, node count, base port, Kafka version
    <state_dir>/node-<id>/server.properties, log4j2.properties
    <state_dir>/node-<id>/data/          formatted KRaft storage (kept across restarts)
    <state_dir>/node-<id>/kafka.pid      PID of the running JVM
    <state_dir>/node-<id>/kafka.log      JVM stdout/stderr (warnings and errors)
    <state_dir>/node-<id>/server.log     broker log (info and up)
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from hub.localkafka.config import (
    ClusterLayout,
    default_heap_mb,
    new_cluster_id,
    render_log4j2,
    render_server_properties,
)
from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from hub.localkafka.jvm import classpath, find_java, heap_options
from hub.localkafka.ports import port_answers, require_free
from hub.localkafka.process import (
    find_node_process,
    is_node_process,
    read_pid,
    start_detached,
    stop_processes,
    tail,
    write_pid,
)
from hub.localkafka.state import ClusterRecord, load_record, locked, save_record

FORMAT_TIMEOUT_S = 120.0
HEALTH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    pid: int | None
    alive: bool
    broker_port: int
    controller_port: int
    log_path: Path


@dataclass(frozen=True)
class ClusterStatus:
    state_dir: Path
    kafka_version: str
    bootstrap_servers: str
    nodes: tuple[NodeStatus, ...]
    healthy: bool
    detail: str = ""  # why the cluster is not healthy; empty when it is


@dataclass(frozen=True)
class NodeFiles:
    """The files of one node inside the state folder."""

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
        return self.root / "kafka.log"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"

    @property
    def formatted(self) -> bool:
        return (self.data / "meta.properties").is_file()

    def log_tail(self, lines: int = 3) -> str:
        last = tail(self.log, lines) or tail(self.server_log, lines)
        return " | ".join(last) if last else "log is empty"


class LocalKafka:
    """Start, inspect and stop a local KRaft cluster of 1 or 3 nodes.

    ``up`` and ``down`` are idempotent. ``status``, ``down`` and ``bootstrap_servers``
    follow the layout recorded in the state folder by the last ``up``, so a second
    ``LocalKafka(state_dir)`` finds a cluster started with other ports.
    """

    def __init__(
        self,
        state_dir: Path,
        nodes: int = 1,
        base_port: int = 9092,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        heap_mb: int | None = None,
        cache_dir: Path | None = None,
        *,
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir.expanduser().resolve()
        self.requested = ClusterLayout(nodes, base_port)
        self.kafka_version = kafka_version
        self.heap_mb = heap_mb if heap_mb is not None else default_heap_mb(nodes)
        if self.heap_mb < 128:
            raise LocalKafkaError(f"heap of {self.heap_mb} MB is too small: use 256 MB or more")
        self.cache_dir = cache_dir
        self.extra_config = dict(extra_config or {})

    # -- what is there -------------------------------------------------------------

    @property
    def layout(self) -> ClusterLayout:
        """The recorded layout when the state folder has one, else the requested one."""
        record = load_record(self.state_dir)
        return record.layout if record is not None else self.requested

    @property
    def bootstrap_servers(self) -> str:
        return self.layout.bootstrap_servers

    def node_files(self, node_id: int) -> NodeFiles:
        return NodeFiles(node_id, self.state_dir / f"node-{node_id}")

    def running_pid(self, node_id: int) -> int | None:
        """The PID of node ``node_id`` when it runs; re-finds it if the PID file was lost."""
        files = self.node_files(node_id)
        pid = read_pid(files.pid_file)
        if pid is not None and is_node_process(pid, files.properties):
            return pid
        found = find_node_process(files.properties) if files.properties.exists() else None
        if found is not None:
            write_pid(files.pid_file, found)
        return found

    def status(self) -> ClusterStatus:
        record = load_record(self.state_dir)
        layout = record.layout if record is not None else self.requested
        nodes = []
        for node_id in layout.node_ids:
            files = self.node_files(node_id)
            pid = self.running_pid(node_id)
            nodes.append(
                NodeStatus(
                    node_id=node_id,
                    pid=pid if pid is not None else read_pid(files.pid_file),
                    alive=pid is not None,
                    broker_port=layout.broker_port(node_id),
                    controller_port=layout.controller_port(node_id),
                    log_path=files.log,
                )
            )
        down = [node.node_id for node in nodes if not node.alive]
        if record is None:
            healthy, detail = False, f"no cluster in {self.state_dir}: run `govhub kafka up`"
        elif down:
            healthy, detail = False, f"node(s) {down} not running"
        else:
            healthy, detail = probe(layout, HEALTH_TIMEOUT_S)
        return ClusterStatus(
            state_dir=self.state_dir,
            kafka_version=record.kafka_version if record is not None else self.kafka_version,
            bootstrap_servers=layout.bootstrap_servers,
            nodes=tuple(nodes),
            healthy=healthy,
            detail=detail,
        )

    # -- up ------------------------------------------------------------------------

    def up(self, timeout: float = 120.0) -> str:
        """Start what is not running and wait until every broker serves metadata.

        ``timeout`` bounds the wait for readiness; the one-off jar download is extra.
        Returns the bootstrap servers string.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.state_dir / ".lock"):
            layout = self.requested
            record = self._check_record(load_record(self.state_dir))
            running = {i: pid for i in layout.node_ids if (pid := self.running_pid(i))}
            if record is not None and running and record.base_port != layout.base_port:
                raise LocalKafkaError(
                    f"the cluster in {self.state_dir} runs on base port {record.base_port}: "
                    f"use --base-port {record.base_port}, or run `govhub kafka down` first"
                )
            if len(running) == layout.nodes and probe(layout, HEALTH_TIMEOUT_S)[0]:
                return layout.bootstrap_servers
            to_start = [i for i in layout.node_ids if i not in running]
            for node_id in to_start:
                self.node_files(node_id).pid_file.unlink(missing_ok=True)  # stale
            require_free(layout, to_start)
            java = find_java()
            libs = ensure_kafka_jars(self.kafka_version, self.cache_dir)
            cluster_id = record.cluster_id if record is not None else new_cluster_id()
            save_record(
                self.state_dir,
                ClusterRecord(cluster_id, layout.nodes, layout.base_port, self.kafka_version),
            )
            for node_id in to_start:
                self._write_config(layout, node_id)
            self._format([i for i in to_start if not self.node_files(i).formatted], java, libs,
                         cluster_id)  # fmt: skip
            started = {i: self._launch(i, java, libs) for i in to_start}
            try:
                self._wait_ready(layout, started, time.monotonic() + timeout, timeout)
            except BaseException:
                self._stop(started, timeout=10.0)
                raise
            return layout.bootstrap_servers

    def _check_record(self, record: ClusterRecord | None) -> ClusterRecord | None:
        if record is not None and record.nodes != self.requested.nodes:
            raise LocalKafkaError(
                f"{self.state_dir} holds a {record.nodes}-node cluster: use --nodes "
                f"{record.nodes}, or another --state-dir for a {self.requested.nodes}-node one"
            )
        return record

    def _write_config(self, layout: ClusterLayout, node_id: int) -> None:
        files = self.node_files(node_id)
        files.data.mkdir(parents=True, exist_ok=True)
        files.properties.write_text(
            render_server_properties(layout, node_id, files.data, self.heap_mb, self.extra_config),
            encoding="utf-8",
        )
        files.log4j.write_text(render_log4j2(files.server_log), encoding="utf-8")

    def _format(self, node_ids: Iterable[int], java: str, libs: Path, cluster_id: str) -> None:
        """Format KRaft storage of new nodes, all at once (each is a JVM start)."""
        jobs = []
        for node_id in node_ids:
            files = self.node_files(node_id)
            command = [
                java, "-Xmx256m", f"-Dlog4j2.configurationFile={files.log4j}",
                "-cp", classpath(libs), "kafka.tools.StorageTool", "format",
                "-t", cluster_id, "-c", str(files.properties), "--ignore-formatted",
            ]  # fmt: skip
            log = (files.root / "format.log").open("w", encoding="utf-8")
            process = subprocess.Popen(
                command, cwd=files.root, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            jobs.append((node_id, process, log))
        failed = []
        for node_id, process, log in jobs:
            try:
                code = process.wait(timeout=FORMAT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            log.close()
            if code != 0:
                failed.append(node_id)
        if failed:
            files = self.node_files(failed[0])
            last = " | ".join(tail(files.root / "format.log", 3)) or "no output"
            raise LocalKafkaError(
                f"formatting storage of node {failed[0]} failed: {last}; "
                f"see {files.root / 'format.log'}"
            )

    def _launch(self, node_id: int, java: str, libs: Path) -> int:
        files = self.node_files(node_id)
        command = [
            java, *heap_options(self.heap_mb),
            f"-Dlog4j2.configurationFile={files.log4j}",
            "-cp", classpath(libs), "kafka.Kafka", str(files.properties),
        ]  # fmt: skip
        with files.log.open("a", encoding="utf-8") as log:
            log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} starting node {node_id}\n")
        pid = start_detached(command, files.log, files.root)
        write_pid(files.pid_file, pid)
        return pid

    def _wait_ready(
        self, layout: ClusterLayout, started: Mapping[int, int], deadline: float, timeout: float
    ) -> None:
        while True:
            for node_id, pid in started.items():
                files = self.node_files(node_id)
                if not is_node_process(pid, files.properties):
                    raise LocalKafkaError(
                        f"kafka node {node_id} exited while starting: {files.log_tail()}; "
                        f"see {files.log}"
                    )
            remaining = deadline - time.monotonic()
            if all(port_answers(layout.broker_port(i)) for i in layout.node_ids):
                ready, _ = probe(layout, max(0.5, min(2.0, remaining)))
                if ready:
                    return
            if time.monotonic() >= deadline:
                files = self.node_files(next(iter(started), 0))
                raise LocalKafkaError(
                    f"kafka not ready after {timeout:.0f} s: {files.log_tail()}; "
                    f"see {files.log} (raise --timeout if the machine is busy)"
                )
            time.sleep(0.2)

    # -- down ----------------------------------------------------------------------

    def down(self, timeout: float = 30.0) -> None:
        """Stop every node: SIGTERM, then SIGKILL after ``timeout``. Safe to repeat."""
        if not self.state_dir.is_dir():
            return
        with locked(self.state_dir / ".lock"):
            layout = self.layout
            running = {i: pid for i in layout.node_ids if (pid := self.running_pid(i))}
            self._stop(running, timeout)
            for node_id in layout.node_ids:
                self.node_files(node_id).pid_file.unlink(missing_ok=True)

    def _stop(self, pids: Mapping[int, int], timeout: float) -> None:
        stop_processes({pid: self.node_files(i).properties for i, pid in pids.items()}, timeout)
        for node_id in pids:
            self.node_files(node_id).pid_file.unlink(missing_ok=True)


def admin_client(bootstrap_servers: str) -> AdminClient:
    """An AdminClient that fails fast and stays quiet while brokers are still starting."""
    return AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "socket.connection.setup.timeout.ms": 2000,
            "reconnect.backoff.max.ms": 500,
            "log_level": 0,
        }
    )


def probe(layout: ClusterLayout, timeout: float) -> tuple[bool, str]:
    """Ask the brokers for metadata: healthy when every node is a registered broker."""
    try:
        metadata = admin_client(layout.bootstrap_servers).list_topics(timeout=timeout)
    except KafkaException as exc:
        return False, f"metadata request failed: {exc.args[0] if exc.args else exc}"
    if len(metadata.brokers) < layout.nodes:
        return False, f"{len(metadata.brokers)} of {layout.nodes} brokers registered"
    return True, ""
