"""Broker metrics for Prometheus: the JMX exporter java agent, fetched from Maven Central.

``io.prometheus.jmx:jmx_prometheus_javaagent`` runs inside the broker JVM and serves
``/metrics`` on its own port. It is fetched once into the cache with Maven, like the
Kafka jars; when that fails the broker still starts, without the agent, and the caller
gets the reason to show (:func:`try_agent_jar`).

:func:`render_exporter_config` selects the broker metrics an SRE watches: request rates
and latencies, under-replicated and under-min-ISR partitions, ISR shrinks and expands,
log flushes, controller state, request queue and idle ratios. JVM metrics come with the
agent. Only aggregates are exported (no per-topic or per-client series), so the number
of series does not grow with the hub's topics or clients.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.jars import _copy_dependencies
from hub.localkafka.paths import default_cache_dir
from hub.localkafka.state import locked

JMX_EXPORTER_VERSION = "1.0.1"
JMX_EXPORTER_ARTIFACT = ("io.prometheus.jmx", "jmx_prometheus_javaagent")
DEFAULT_METRICS_PORT = 9404  # the exporter's customary port; node i uses 9404 + i

logger = logging.getLogger(__name__)


def agent_dir(version: str = JMX_EXPORTER_VERSION, cache_dir: Path | None = None) -> Path:
    return (cache_dir if cache_dir is not None else default_cache_dir()) / "jmx-exporter" / version


def agent_jar_path(version: str = JMX_EXPORTER_VERSION, cache_dir: Path | None = None) -> Path:
    return agent_dir(version, cache_dir) / f"{JMX_EXPORTER_ARTIFACT[1]}-{version}.jar"


def ensure_agent_jar(version: str = JMX_EXPORTER_VERSION, cache_dir: Path | None = None) -> Path:
    """The agent jar, fetched with Maven on first use; LocalKafkaError when it cannot be."""
    jar = agent_jar_path(version, cache_dir)
    if jar.is_file():
        return jar
    home = agent_dir(version, cache_dir)
    home.mkdir(parents=True, exist_ok=True)
    with locked(home / ".lock"):
        if jar.is_file():
            return jar
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
                "mvn not found: install Apache Maven (apt-get install maven) to fetch the "
                f"JMX exporter agent {version} once into {home}"
            )
        logger.info("fetching the JMX exporter agent %s into %s (once)", version, home)
        libs = home / "download"
        shutil.rmtree(libs, ignore_errors=True)
        libs.mkdir()
        log = home / "mvn.log"
        log.write_text("", encoding="utf-8")
        group, artifact = JMX_EXPORTER_ARTIFACT
        try:
            _copy_dependencies(mvn, [(group, artifact, version)], home, libs, log, transitive=False)
        except LocalKafkaError as exc:
            raise LocalKafkaError(
                str(exc).replace("Kafka jar download", "JMX exporter agent download")
            ) from None
        fetched = libs / jar.name
        if not fetched.is_file():
            raise LocalKafkaError(f"Maven did not deliver {jar.name}; see {log}")
        fetched.replace(jar)
        shutil.rmtree(libs, ignore_errors=True)
    return jar


def try_agent_jar(
    version: str = JMX_EXPORTER_VERSION, cache_dir: Path | None = None
) -> tuple[Path | None, str]:
    """``(jar, "")``, or ``(None, why)`` when the agent cannot be had: brokers then start
    without broker metrics rather than not at all."""
    try:
        return ensure_agent_jar(version, cache_dir), ""
    except LocalKafkaError as exc:
        return None, (
            f"broker metrics disabled: {exc}. The brokers run without the JMX exporter; "
            "fix the download and restart them (`govhub kafka down` then `up`) to get "
            "/metrics"
        )


def agent_option(jar: Path, port: int, config: Path, host: str = "127.0.0.1") -> str:
    """The JVM option that starts the agent on ``host:port`` with ``config``."""
    return f"-javaagent:{jar}={host}:{port}:{config}"


# Each rule: (MBean pattern, metric name, type, extra label lines). Patterns follow the
# exporter's "domain<key=value, ...><>attribute" form and are matched whole, so the
# per-topic and per-client variants of the same MBeans are not exported.
_RULES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # Request rates, bytes and messages of the whole broker.
    (
        "kafka.server<type=BrokerTopicMetrics, name=(MessagesInPerSec|BytesInPerSec"
        "|BytesOutPerSec|BytesRejectedPerSec|TotalProduceRequestsPerSec"
        "|TotalFetchRequestsPerSec|FailedProduceRequestsPerSec|FailedFetchRequestsPerSec"
        "|ProduceMessageConversionsPerSec|FetchMessageConversionsPerSec)><>Count",
        "kafka_server_brokertopicmetrics_$1_total",
        "COUNTER",
        (),
    ),
    # Replication health.
    (
        "kafka.server<type=ReplicaManager, name=(UnderReplicatedPartitions"
        "|UnderMinIsrPartitionCount|AtMinIsrPartitionCount|OfflineReplicaCount"
        "|PartitionCount|LeaderCount)><>Value",
        "kafka_server_replicamanager_$1",
        "GAUGE",
        (),
    ),
    (
        "kafka.server<type=ReplicaManager, name=(IsrShrinksPerSec|IsrExpandsPerSec"
        "|FailedIsrUpdatesPerSec)><>Count",
        "kafka_server_replicamanager_$1_total",
        "COUNTER",
        (),
    ),
    (
        "kafka.server<type=ReplicaFetcherManager, name=MaxLag, clientId=Replica><>Value",
        "kafka_server_replicafetchermanager_maxlag",
        "GAUGE",
        (),
    ),
    # Controller (KRaft) state.
    (
        "kafka.controller<type=KafkaController, name=(ActiveControllerCount"
        "|OfflinePartitionsCount|GlobalPartitionCount|GlobalTopicCount|ActiveBrokerCount"
        "|FencedBrokerCount|PreferredReplicaImbalanceCount)><>Value",
        "kafka_controller_kafkacontroller_$1",
        "GAUGE",
        (),
    ),
    # Log flushes: how many, and how long they take.
    (
        "kafka.log<type=LogFlushStats, name=LogFlushRateAndTimeMs><>Count",
        "kafka_log_logflushstats_flushes_total",
        "COUNTER",
        (),
    ),
    (
        "kafka.log<type=LogFlushStats, name=LogFlushRateAndTimeMs><>(50|99)thPercentile",
        "kafka_log_logflushstats_flush_time_ms",
        "GAUGE",
        ('quantile: "0.$1"',),
    ),
    # Requests: rate per request type, total time and queue time as percentiles.
    (
        "kafka.network<type=RequestMetrics, name=RequestsPerSec, request=(\\w+), "
        "version=(\\d+)><>Count",
        "kafka_network_requestmetrics_requests_total",
        "COUNTER",
        ('request: "$1"', 'version: "$2"'),
    ),
    (
        "kafka.network<type=RequestMetrics, name=(TotalTimeMs|RequestQueueTimeMs"
        "|LocalTimeMs|RemoteTimeMs|ResponseSendTimeMs), request=(Produce|FetchConsumer"
        "|FetchFollower|Metadata|OffsetCommit|JoinGroup|SyncGroup|Heartbeat"
        "|AddPartitionsToTxn|EndTxn|TxnOffsetCommit|InitProducerId)><>(50|99)thPercentile",
        "kafka_network_requestmetrics_$1",
        "GAUGE",
        ('request: "$2"', 'quantile: "0.$3"'),
    ),
    (
        "kafka.network<type=RequestMetrics, name=ErrorsPerSec, request=(\\w+), "
        "error=(\\w+)><>Count",
        "kafka_network_requestmetrics_errors_total",
        "COUNTER",
        ('request: "$1"', 'error: "$2"'),
    ),
    (
        "kafka.network<type=RequestChannel, name=(RequestQueueSize|ResponseQueueSize)><>Value",
        "kafka_network_requestchannel_$1",
        "GAUGE",
        (),
    ),
    (
        "kafka.network<type=SocketServer, name=NetworkProcessorAvgIdlePercent><>Value",
        "kafka_network_socketserver_networkprocessoravgidlepercent",
        "GAUGE",
        (),
    ),
    (
        "kafka.server<type=KafkaRequestHandlerPool, name=RequestHandlerAvgIdlePercent>"
        "<>OneMinuteRate",
        "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent",
        "GAUGE",
        (),
    ),
)

_INCLUDE = (
    "kafka.server:type=BrokerTopicMetrics,*",
    "kafka.server:type=ReplicaManager,*",
    "kafka.server:type=ReplicaFetcherManager,*",
    "kafka.server:type=KafkaRequestHandlerPool,*",
    "kafka.controller:type=KafkaController,*",
    "kafka.log:type=LogFlushStats,*",
    "kafka.network:type=RequestMetrics,name=RequestsPerSec,*",
    "kafka.network:type=RequestMetrics,name=ErrorsPerSec,*",
    *(
        f"kafka.network:type=RequestMetrics,name={name},request={request}"
        for name in (
            "TotalTimeMs",
            "RequestQueueTimeMs",
            "LocalTimeMs",
            "RemoteTimeMs",
            "ResponseSendTimeMs",
        )
        for request in (
            "Produce",
            "FetchConsumer",
            "FetchFollower",
            "Metadata",
            "OffsetCommit",
            "JoinGroup",
            "SyncGroup",
            "Heartbeat",
            "AddPartitionsToTxn",
            "EndTxn",
            "TxnOffsetCommit",
            "InitProducerId",
        )
    ),
    "kafka.network:type=RequestChannel,*",
    "kafka.network:type=SocketServer,name=NetworkProcessorAvgIdlePercent",
)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_exporter_config() -> str:
    """The agent's YAML config (written by hand as YAML: no YAML library needed)."""
    lines = [
        "# JMX exporter rules for a GovHub Kafka broker, written by `govhub kafka up`.",
        "lowercaseOutputName: true",
        "lowercaseOutputLabelNames: true",
        "includeObjectNames:",
        *(f"  - {_quoted(name)}" for name in _INCLUDE),
        "rules:",
    ]
    for pattern, name, kind, labels in _RULES:
        lines += [f"  - pattern: {_quoted(pattern)}", f"    name: {name}", f"    type: {kind}"]
        if labels:
            lines.append("    labels:")
            lines += [f"      {label}" for label in labels]
    return "\n".join(lines) + "\n"
