"""The shape of a local KRaft cluster and the files each node runs from.

Everything here is pure: it turns a layout into text, so it is tested without a broker.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hub.localkafka.errors import LocalKafkaError

LOOPBACK = "127.0.0.1"
NODE_COUNTS = (1, 3)
DEFAULT_BASE_PORT = 9092
MIB = 1024 * 1024
KAFKA_DEDUPE_BUFFER = 128 * MIB  # Kafka's default log.cleaner.dedupe.buffer.size


@dataclass(frozen=True)
class ClusterLayout:
    """How many combined broker+controller nodes, and where their ports start.

    Node ``i`` listens on ``base_port + 2*i`` (clients) and ``base_port + 2*i + 1``
    (controller quorum), all on the loopback address.
    """

    nodes: int = 1
    base_port: int = DEFAULT_BASE_PORT

    def __post_init__(self) -> None:
        if self.nodes not in NODE_COUNTS:
            raise LocalKafkaError(f"nodes must be 1 or 3, not {self.nodes}")
        highest = 65535 - 2 * self.nodes + 1
        if not 1024 <= self.base_port <= highest:
            raise LocalKafkaError(
                f"base port {self.base_port} out of range: choose --base-port in 1024..{highest}"
            )

    @property
    def node_ids(self) -> range:
        return range(self.nodes)

    def broker_port(self, node_id: int) -> int:
        return self.base_port + 2 * node_id

    def controller_port(self, node_id: int) -> int:
        return self.base_port + 2 * node_id + 1

    def ports(self, node_id: int) -> tuple[int, int]:
        return self.broker_port(node_id), self.controller_port(node_id)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{LOOPBACK}:{self.broker_port(i)}" for i in self.node_ids)

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{i}@{LOOPBACK}:{self.controller_port(i)}" for i in self.node_ids)


def default_heap_mb(nodes: int) -> int:
    """768 MB for a single node, 512 MB each when three share a small machine."""
    return 768 if nodes == 1 else 512


def dedupe_buffer_bytes(heap_mb: int) -> int:
    """The log cleaner allocates this buffer at start; keep it to an eighth of a small heap."""
    return min(KAFKA_DEDUPE_BUFFER, heap_mb * MIB // 8)


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's ``Uuid.randomUuid``, never starts with '-' so command lines parse it.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def broker_settings(
    layout: ClusterLayout, node_id: int, data_dir: Path, heap_mb: int
) -> dict[str, str]:
    """The server.properties settings of one combined broker+controller node."""
    broker, controller = layout.ports(node_id)
    replicas = "1" if layout.nodes == 1 else "3"
    min_isr = "1" if layout.nodes == 1 else "2"
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": layout.quorum_voters,
        "listeners": f"PLAINTEXT://{LOOPBACK}:{broker},CONTROLLER://{LOOPBACK}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{broker}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.cleanup.policy": "delete",
        "log.cleaner.enable": "true",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(dedupe_buffer_bytes(heap_mb)),
    }


def render_properties(settings: Mapping[str, str], header: str = "") -> str:
    """Java properties text, one ``key=value`` a line, in the mapping's order."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in settings.items():
        if "\n" in key or "\n" in value or "=" in key:
            raise LocalKafkaError(
                f"bad broker setting {key!r}={value!r}: no newlines or '=' in keys"
            )
        lines.append(f"{key}={value.replace(chr(92), chr(92) * 2)}")
    return "\n".join(lines) + "\n"


def render_server_properties(
    layout: ClusterLayout,
    node_id: int,
    data_dir: Path,
    heap_mb: int,
    extra: Mapping[str, str] | None = None,
) -> str:
    """server.properties for node ``node_id``; ``extra`` settings override ours."""
    settings = broker_settings(layout, node_id, data_dir, heap_mb)
    settings.update(extra or {})
    header = (
        f"Local KRaft node {node_id} of {layout.nodes}, written by `govhub kafka up`.\n"
        "Rewritten at every start: change settings through LocalKafka(extra_config=...)."
    )
    return render_properties(settings, header)


def render_log4j2(server_log: Path) -> str:
    """log4j2 config: INFO and up to a rolling ``server.log``, WARN and up to stderr."""
    return f"""\
status = warn
name = govhub-local-kafka
# Kafka logs its own shutdown from a JVM shutdown hook; log4j must not stop before it.
shutdownHook = disable

appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = warn

appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {server_log}
appender.file.filePattern = {server_log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3

rootLogger.level = info
rootLogger.appenderRef.console.ref = STDERR
rootLogger.appenderRef.file.ref = FILE

# Peers that are not up yet are expected while a quorum forms: file only, not stderr.
logger.network.name = org.apache.kafka.clients.NetworkClient
logger.network.additivity = false
logger.network.appenderRef.file.ref = FILE

logger.request.name = kafka.request.logger
logger.request.level = warn
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = warn
"""
