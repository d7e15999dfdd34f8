"""Local Apache Kafka (KRaft) from Maven Central jars, for the demo and the tests.

Example::

    kafka = LocalKafka(Path(".govhub/kafka"))
    bootstrap = kafka.up()       # "127.0.0.1:9092"
    kafka.status().healthy       # True
    kafka.down()
"""

from hub.localkafka.cluster import ClusterStatus, LocalKafka, NodeStatus
from hub.localkafka.config import ClusterLayout
from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from hub.localkafka.paths import default_cache_dir, default_state_dir, kafka_state_dir
from hub.localkafka.ports import find_free_base_port

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "ClusterLayout",
    "ClusterStatus",
    "LocalKafka",
    "LocalKafkaError",
    "NodeStatus",
    "default_cache_dir",
    "default_state_dir",
    "ensure_kafka_jars",
    "find_free_base_port",
    "kafka_state_dir",
]
