"""The local jar broker for real: start, transactions, compaction, stale PIDs, three nodes.

Each cluster runs in a temporary state folder on free ports, so a demo broker on 9092 is
never touched.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from hub.localkafka import LocalKafka, LocalKafkaError, find_free_base_port
from hub.localkafka.process import find_node_process, is_node_process, read_pid, write_pid

pytestmark = pytest.mark.integration


def create_topic(
    bootstrap: str, partitions: int = 1, replicas: int = -1, config: dict[str, str] | None = None
) -> str:
    name = f"lk-{uuid.uuid4().hex}"
    topic = NewTopic(name, partitions, replicas, config=config or {})
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([topic])[name].result(30)
    return name


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {name: entry.value for name, entry in entries.items()}


def read_all(bootstrap: str, topic: str, partition: int = 0) -> list[tuple[bytes, bytes | None]]:
    """Every record visible to a read_committed consumer, from the start to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        consumer.assign([TopicPartition(topic, partition, 0)])
        records: list[tuple[bytes, bytes | None]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            position = consumer.position([TopicPartition(topic, partition)])[0].offset
            if position >= end:
                break
            for message in consumer.consume(100, timeout=0.5):
                assert message.error() is None, message.error()
                records.append((message.key(), message.value()))
        return records
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = LocalKafka(
        tmp_path_factory.mktemp("kafka"),
        base_port=find_free_base_port(1),
        heap_mb=512,
        extra_config={"log.cleaner.backoff.ms": "500"},  # compaction shows within seconds
    )
    yield kafka
    kafka.down()


def test_up_is_healthy_and_idempotent(cluster: LocalKafka) -> None:
    bootstrap = cluster.up(timeout=120)
    assert bootstrap == cluster.bootstrap_servers
    status = cluster.status()
    assert status.healthy, status.detail
    (node,) = status.nodes
    assert node.alive
    assert f"127.0.0.1:{node.broker_port}" == bootstrap
    assert node.controller_port == node.broker_port + 1
    assert node.log_path.is_file()

    started = time.monotonic()
    assert cluster.up() == bootstrap
    assert time.monotonic() - started < 5
    assert cluster.status().nodes[0].pid == node.pid


def test_transactions_commit_and_abort(cluster: LocalKafka) -> None:
    bootstrap = cluster.up()
    topic = create_topic(bootstrap)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k1", value=b"committed")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k2", value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k3", value=b"committed too")
    producer.commit_transaction(30)

    assert read_all(bootstrap, topic) == [(b"k1", b"committed"), (b"k3", b"committed too")]


def test_compacted_topic_keeps_the_latest_value(cluster: LocalKafka) -> None:
    bootstrap = cluster.up()
    topic = create_topic(
        bootstrap,
        config={
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
        },
    )
    assert topic_config(bootstrap, topic)["cleanup.policy"] == "compact"
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for version in range(5):
        producer.produce(topic, key=b"a", value=b"a%d" % version)
        producer.produce(topic, key=b"b", value=b"b%d" % version)
    producer.flush(30)
    time.sleep(0.3)  # older than segment.ms: the next record rolls the segment
    producer.produce(topic, key=b"c", value=b"c0")
    producer.flush(30)

    deadline = time.monotonic() + 30
    while (records := read_all(bootstrap, topic)) != [(b"a", b"a4"), (b"b", b"b4"), (b"c", b"c0")]:
        assert time.monotonic() < deadline, f"not compacted: {records}"
        time.sleep(0.5)


def test_stale_pid_files_do_not_block_up(cluster: LocalKafka) -> None:
    bootstrap = cluster.up()
    kept = create_topic(bootstrap)
    cluster.down()
    pid_file = cluster.node_files(0).pid_file
    write_pid(pid_file, os.getpid())  # a live process that is not Kafka: must survive

    status = cluster.status()
    assert not status.healthy
    assert not status.nodes[0].alive

    assert cluster.up() == bootstrap
    new_pid = read_pid(pid_file)
    assert new_pid is not None
    assert new_pid != os.getpid()
    assert is_node_process(new_pid, cluster.node_files(0).properties)
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    assert kept in topics  # formatted storage and cluster id were reused


def test_down_stops_the_broker(cluster: LocalKafka) -> None:
    cluster.up()
    pid = cluster.status().nodes[0].pid
    assert pid is not None
    cluster.down()
    assert not is_node_process(pid, cluster.node_files(0).properties)
    assert not cluster.node_files(0).pid_file.exists()
    assert not cluster.status().healthy
    cluster.down()  # idempotent


def test_three_nodes_replicate(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka", nodes=3, base_port=find_free_base_port(3))
    try:
        bootstrap = kafka.up(timeout=180)
        assert bootstrap.count(",") == 2
        status = kafka.status()
        assert status.healthy, status.detail
        assert len({node.pid for node in status.nodes}) == 3

        topic = create_topic(bootstrap, partitions=3, replicas=3)
        deadline = time.monotonic() + 30
        admin = AdminClient({"bootstrap.servers": bootstrap})
        while True:
            partitions = admin.list_topics(topic=topic, timeout=10).topics[topic].partitions
            if len(partitions) == 3 and all(len(p.isrs) == 3 for p in partitions.values()):
                break
            assert time.monotonic() < deadline, partitions
            time.sleep(0.2)
        assert all(sorted(p.replicas) == [0, 1, 2] for p in partitions.values())
        assert topic_config(bootstrap, topic)["min.insync.replicas"] == "2"
    finally:
        running = {node.node_id: node.pid for node in kafka.status().nodes if node.pid}
        kafka.down()
    assert len(running) == 3
    for node_id, pid in running.items():
        assert not is_node_process(pid, kafka.node_files(node_id).properties)


def test_session_fixtures(request: pytest.FixtureRequest) -> None:
    """new_topic and group_id from tests.kafka_fixtures, when the plugin is loaded."""
    try:
        make_topic = request.getfixturevalue("new_topic")
    except pytest.FixtureLookupError:
        pytest.skip("tests.kafka_fixtures is not loaded (pytest_plugins in tests/conftest.py)")
    group = request.getfixturevalue("group_id")
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    topic = make_topic(partitions=2, config={"cleanup.policy": "compact"}, prefix="fx")
    assert topic.startswith("fx-")
    assert topic_config(bootstrap, topic)["cleanup.policy"] == "compact"
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 2
    assert group.startswith("g-test_session_fixtures-")


def test_failed_start_is_cleaned_up(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "slow", base_port=find_free_base_port(1))
    with pytest.raises(LocalKafkaError, match=r"kafka not ready after 0 s: .*; see .*kafka\.log"):
        kafka.up(timeout=0.2)
    assert not kafka.node_files(0).pid_file.exists()
    assert find_node_process(kafka.node_files(0).properties) is None

    base = find_free_base_port(1)
    with socket.socket() as squatter:  # takes the port after the check, before the JVM binds
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        listeners = f"PLAINTEXT://127.0.0.1:{taken},CONTROLLER://127.0.0.1:{base + 1}"
        broken = LocalKafka(
            tmp_path / "broken", base_port=base, extra_config={"listeners": listeners}
        )
        with pytest.raises(
            LocalKafkaError, match=r"kafka node 0 exited while starting: .*bind"
        ) as raised:
            broken.up(timeout=60)
    assert "\n" not in str(raised.value)
    assert not broken.node_files(0).pid_file.exists()
