"""Pytest fixtures for tests that need a real Kafka broker.

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["tests.kafka_fixtures"]``.

``kafka_bootstrap`` finds a broker once per session, in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS``, when set;
2. a testcontainers ``KafkaContainer`` (KRaft), when a Docker engine answers;
3. the local jar broker (``hub.localkafka``) in a temporary state folder on free ports,
   stopped at the end of the session.

Every test that uses it, directly or through ``new_topic``, is marked ``integration``, so
``pytest -m "not integration"`` runs the unit tests without a broker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from hub.localkafka import LocalKafka, find_free_base_port

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
IMAGE_ENV = "GOVHUB_TEST_KAFKA_IMAGE"
DEFAULT_IMAGE = "confluentinc/cp-kafka:7.6.0"
LOCAL_ROOT = Path(tempfile.gettempdir()) / "govhub-test-kafka"
TOPIC_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KafkaSource:
    kind: str  # "env", "testcontainers" or "local"
    bootstrap_servers: str
    detail: str

    def describe(self) -> str:
        return f"kafka_bootstrap: {self.bootstrap_servers} ({self.kind}: {self.detail})"


_SOURCE_KEY = pytest.StashKey[KafkaSource]()


class TopicFactory(Protocol):
    def __call__(
        self, partitions: int = 3, config: dict[str, str] | None = None, prefix: str = "t"
    ) -> str: ...


# -- finding a broker -------------------------------------------------------------------


def docker_engine_answers(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` seconds."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False  # the SDK would leak its socket on the way to the same answer
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no permission, engine down: all mean "no"
        return False


def start_testcontainers_kafka(stack: ExitStack) -> KafkaSource:
    """A single-node KRaft broker in Docker, configured like the local one."""
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.9
        from testcontainers.kafka import KafkaContainer

    image = os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
    container = (
        KafkaContainer(image)
        .with_kraft()
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    try:
        container.start(timeout=180)
    except Exception:
        with contextlib.suppress(Exception):
            container.stop()
        raise
    stack.callback(container.stop)
    return KafkaSource("testcontainers", container.get_bootstrap_server(), image)


def start_local_kafka(stack: ExitStack, root: Path = LOCAL_ROOT) -> KafkaSource:
    """The jar broker in ``root/<pid>`` on free ports; leftovers of dead sessions are reaped."""
    reap_leftovers(root)
    state_dir = root / str(os.getpid())
    shutil.rmtree(state_dir, ignore_errors=True)
    kafka = LocalKafka(state_dir, base_port=find_free_base_port(1), heap_mb=512)
    stack.callback(shutil.rmtree, state_dir, True)
    stack.callback(kafka.down)
    started = time.monotonic()
    bootstrap = kafka.up(timeout=180.0)
    took = time.monotonic() - started
    return KafkaSource(
        "local", bootstrap, f"Kafka {kafka.kafka_version} from jars, up in {took:.1f} s"
    )


def reap_leftovers(root: Path) -> None:
    """Stop brokers left by test sessions that died without tearing down."""
    if not root.is_dir():
        return
    for state_dir in root.iterdir():
        if not state_dir.name.isdigit() or _pid_alive(int(state_dir.name)):
            continue
        with contextlib.suppress(Exception):
            LocalKafka(state_dir).down(timeout=10.0)
        shutil.rmtree(state_dir, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_kafka(stack: ExitStack) -> KafkaSource:
    """Pick the broker for this session: env var, then Docker, then the local jars."""
    configured = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if configured:
        return KafkaSource("env", configured, f"${BOOTSTRAP_ENV}")
    if docker_engine_answers():
        try:
            return start_testcontainers_kafka(stack)
        except Exception as exc:
            log.warning("testcontainers Kafka failed (%s); using the local jar broker", exc)
    return start_local_kafka(stack)


def wait_for_metadata(bootstrap_servers: str, timeout: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        pytest.fail(f"Kafka at {bootstrap_servers} does not answer: {exc}", pytrace=False)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker, shared by the whole session."""
    with ExitStack() as stack:
        source = open_kafka(stack)
        wait_for_metadata(source.bootstrap_servers)
        request.config.stash[_SOURCE_KEY] = source
        log.info(source.describe())
        yield source.bootstrap_servers


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Create uniquely named topics; they are deleted when the test ends."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []

    def create(partitions: int = 3, config: dict[str, str] | None = None, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex}"
        topic = NewTopic(name, num_partitions=partitions, config=dict(config or {}))
        admin.create_topics([topic], operation_timeout=30)[name].result(timeout=60)
        created.append(name)
        wait_for_topic(admin, name, partitions)
        return name

    yield create
    if created:
        for future in admin.delete_topics(created, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                future.result(timeout=15)


@pytest.fixture
def group_id(request: pytest.FixtureRequest) -> str:
    """A consumer group id used by this test only."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60]
    return f"g-{name}-{uuid.uuid4().hex[:8]}"


def wait_for_topic(admin: AdminClient, name: str, partitions: int) -> None:
    """Wait until every partition of ``name`` has a leader in the metadata."""
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
    while True:
        topic = admin.list_topics(topic=name, timeout=10).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} not ready after {TOPIC_READY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


# -- hooks ------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before -m selects, so "not integration" sees the mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    source = config.stash.get(_SOURCE_KEY, None)
    if source is not None:
        terminalreporter.write_line(source.describe())
