"""A real Apache Kafka cluster in KRaft mode on loopback ports, run from Maven jars.

One or three combined broker+controller nodes live under a state folder::

    <state_dir>/cluster.json             cluster id, node count, base port, Kafka version
    <state_dir>/node-<id>/server.properties, log4j2.properties
    <state_dir>/node-<id>/data/          formatted KRaft storage (kept across restarts)
    <state_dir>/node-<id>/kafka.pid      PID of the running JVM
    <state_dir>/node-<id>/kafka.log      JVM stdout/stderr (warnings and errors)
    <state_dir>/node-<id>/server.log     broker log (info and up)
    <state_dir>/security/                secure mode: credentials, CA (hub.localkafka.security)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hub.localkafka.config import ClusterLayout, default_heap_mb, new_cluster_id
from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.health import probe, wait_ready
from hub.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from hub.localkafka.jmx import agent_option, render_exporter_config, try_agent_jar
from hub.localkafka.jvm import find_java
from hub.localkafka.node import NodeFiles, format_storage, launch, write_config
from hub.localkafka.ports import first_taken, require_free
from hub.localkafka.process import (
    find_node_process,
    is_node_process,
    read_pid,
    stop_processes,
    write_pid,
)
from hub.localkafka.security import (
    BrokerCredentials,
    client_settings,
    ensure_tls_material,
    load_credentials,
    save_credentials,
    scram_format_arguments,
    secure_settings,
    security_paths,
)
from hub.localkafka.state import ClusterRecord, load_record, locked, save_record

HEALTH_TIMEOUT_S = 5.0
MIN_HEAP_MB = 256


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    pid: int | None
    alive: bool
    broker_port: int
    controller_port: int
    log_path: Path
    metrics_port: int | None = None  # the JMX exporter's /metrics, when attached


@dataclass(frozen=True)
class ClusterStatus:
    state_dir: Path
    kafka_version: str
    bootstrap_servers: str
    nodes: tuple[NodeStatus, ...]
    healthy: bool
    detail: str = ""  # why the cluster is not healthy; empty when it is


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
        metrics_port: int | None = None,
        secure: bool = False,
        tls: bool = False,
    ) -> None:
        self.state_dir = state_dir.expanduser().resolve()
        self.requested = ClusterLayout(nodes, base_port)
        self.kafka_version = kafka_version
        self.heap_mb = heap_mb if heap_mb is not None else default_heap_mb(nodes)
        if self.heap_mb < MIN_HEAP_MB:
            raise LocalKafkaError(
                f"heap of {self.heap_mb} MB is too small: use {MIN_HEAP_MB} MB or more"
            )
        self.cache_dir = cache_dir
        self.extra_config = dict(extra_config or {})
        # Broker metrics: the JMX exporter agent on metrics_port + node id (None: off).
        self.metrics_port = metrics_port
        self.metrics_warning = ""  # why the agent could not be attached at the last up
        # Secure mode: SASL/SCRAM (TLS too with ``tls``) and ACLs; see hub.localkafka.security.
        self.security = "sasl_ssl" if tls else ("sasl" if secure else "plaintext")

    # -- what is there -------------------------------------------------------------

    @property
    def layout(self) -> ClusterLayout:
        """The recorded layout when the state folder has one, else the requested one."""
        record = load_record(self.state_dir)
        return record.layout if record is not None else self.requested

    @property
    def bootstrap_servers(self) -> str:
        return self.layout.bootstrap_servers

    @property
    def client_config(self) -> dict[str, str]:
        """librdkafka settings of the admin principal; empty for a plaintext cluster."""
        creds = load_credentials(self.state_dir)
        if creds is None:
            return {}
        return client_settings(creds, security_paths(self.state_dir).ca_cert)

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients of a TLS cluster trust, else None."""
        creds = load_credentials(self.state_dir)
        return security_paths(self.state_dir).ca_cert if creds and creds.tls else None

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
                    metrics_port=(
                        record.metrics_port + node_id
                        if record is not None and record.metrics_port
                        else None
                    ),
                )
            )
        down = [node.node_id for node in nodes if not node.alive]
        if record is None:
            healthy, detail = False, f"no cluster in {self.state_dir}: run `govhub kafka up`"
        elif down:
            healthy, detail = False, f"node(s) {down} not running"
        else:
            healthy, detail = probe(layout, HEALTH_TIMEOUT_S, self.client_config)
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
            creds = self._credentials(record)
            client_config = self.client_config
            running = {i: pid for i in layout.node_ids if (pid := self.running_pid(i))}
            if record is not None and running and record.base_port != layout.base_port:
                raise LocalKafkaError(
                    f"the cluster in {self.state_dir} runs on base port {record.base_port}: "
                    f"use --base-port {record.base_port}, or run `govhub kafka down` first"
                )
            if len(running) == layout.nodes and probe(layout, HEALTH_TIMEOUT_S, client_config)[0]:
                return layout.bootstrap_servers
            to_start = [i for i in layout.node_ids if i not in running]
            for node_id in to_start:
                self.node_files(node_id).pid_file.unlink(missing_ok=True)  # stale
            require_free(layout, to_start)
            java = find_java()
            libs = ensure_kafka_jars(self.kafka_version, self.cache_dir)
            jvm_options = self._metrics_options(to_start)
            cluster_id = record.cluster_id if record is not None else new_cluster_id()
            save_record(
                self.state_dir,
                ClusterRecord(
                    cluster_id,
                    layout.nodes,
                    layout.base_port,
                    self.kafka_version,
                    self.metrics_port if jvm_options else None,
                    self.security,
                ),
            )
            new_nodes = [self.node_files(i) for i in to_start]
            for files in new_nodes:
                extra = dict(self.extra_config)
                if creds is not None:
                    paths = security_paths(self.state_dir)
                    extra = {**secure_settings(layout, files.node_id, creds, paths), **extra}
                write_config(files, layout, self.heap_mb, extra)
                if jvm_options:
                    files.exporter_config.write_text(render_exporter_config(), encoding="utf-8")
            format_storage(
                [f for f in new_nodes if not f.formatted],
                java,
                libs,
                cluster_id,
                scram_format_arguments(creds) if creds is not None else (),
            )
            started: dict[int, NodeFiles] = {}
            try:
                for files in new_nodes:
                    options = jvm_options.get(files.node_id, [])
                    started[launch(files, java, libs, self.heap_mb, options)] = files
                wait_ready(layout, started, timeout, client_config)
            except BaseException:
                stop_processes({pid: f.properties for pid, f in started.items()}, timeout=10.0)
                for files in new_nodes:
                    files.pid_file.unlink(missing_ok=True)
                raise
            return layout.bootstrap_servers

    def _metrics_options(self, node_ids: list[int]) -> dict[int, list[str]]:
        """The JVM options attaching the JMX exporter to each node; empty when metrics are
        off or the agent cannot be had (the reason is kept in ``metrics_warning``)."""
        self.metrics_warning = ""
        if self.metrics_port is None:
            return {}
        ports = [self.metrics_port + i for i in node_ids]
        taken = first_taken(ports)
        if taken is not None:
            raise LocalKafkaError(
                f"metrics port {taken} on 127.0.0.1 is in use by another program: choose "
                "other ports with --metrics-port, or --no-metrics"
            )
        jar, why = try_agent_jar(cache_dir=self.cache_dir)
        if jar is None:
            self.metrics_warning = why
            return {}
        return {
            i: [agent_option(jar, self.metrics_port + i, self.node_files(i).exporter_config)]
            for i in node_ids
        }

    def _check_record(self, record: ClusterRecord | None) -> ClusterRecord | None:
        if record is not None and record.nodes != self.requested.nodes:
            raise LocalKafkaError(
                f"{self.state_dir} holds a {record.nodes}-node cluster: use --nodes "
                f"{record.nodes}, or another --state-dir for a {self.requested.nodes}-node one"
            )
        if record is not None and record.security != self.security:
            flags = {"plaintext": "no --secure", "sasl": "--secure", "sasl_ssl": "--secure --tls"}
            raise LocalKafkaError(
                f"{self.state_dir} holds a {record.security} cluster: start it with "
                f"{flags.get(record.security, record.security)}, or use another --state-dir "
                f"for a {self.security} one (SCRAM users are written when storage is formatted)"
            )
        return record

    def _credentials(self, record: ClusterRecord | None) -> BrokerCredentials | None:
        """The secure cluster's credentials: kept from the first ``up``, else made now."""
        if self.security == "plaintext":
            return None
        creds = load_credentials(self.state_dir)
        if creds is None:
            if record is not None:
                raise LocalKafkaError(
                    f"{security_paths(self.state_dir).credentials} is missing: the secure "
                    f"cluster in {self.state_dir} cannot be reached; remove the folder to "
                    "start afresh"
                )
            creds = BrokerCredentials.generate(tls=self.security == "sasl_ssl")
            save_credentials(self.state_dir, creds)
        if creds.tls:
            ensure_tls_material(security_paths(self.state_dir))
        return creds

    # -- down ----------------------------------------------------------------------

    def down(self, timeout: float = 30.0) -> None:
        """Stop every node: SIGTERM, then SIGKILL after ``timeout``. Safe to repeat."""
        if not self.state_dir.is_dir():
            return
        with locked(self.state_dir / ".lock"):
            layout = self.layout
            running = {}
            for node_id in layout.node_ids:
                pid = self.running_pid(node_id)
                if pid is not None:
                    running[pid] = self.node_files(node_id).properties
            stop_processes(running, timeout)
            for node_id in layout.node_ids:
                self.node_files(node_id).pid_file.unlink(missing_ok=True)
