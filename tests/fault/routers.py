"""Hub processes that can be killed (``govhub serve`` of any roles; routers most of all),
and what the test observes of the router group.

Each router is ``govhub serve --roles router`` in its own process, so SIGKILL ends it
like a crash would: no cleanup, an open transaction left behind. A restarted router keeps
its transactional id, so it fences the killed one's transaction, which the broker then
aborts; routers that run side by side have distinct ids and share one consumer group.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from hub.config import HubConfig

READY_LINE = b"govhub serving"
# What a client may see for a while when the broker restarts.
TRANSIENT = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """One ``govhub serve --roles ROLES`` process of the hub ``config`` describes;
    ``sections`` are written to its own config file (``{"router": {...}}``)."""

    def __init__(
        self,
        config: HubConfig,
        name: str,
        roles: str,
        sections: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.roles = roles
        self.sections = sections or {}
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return Path(self.config.state_dir) / f"{self.name}.log"

    def start(self, timeout: float = 60.0) -> Self:
        """Start the process and wait until it serves (for a router: transactions
        initialised)."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting for it."""
        cfg = self.config
        state_dir = Path(cfg.state_dir)
        config_file = state_dir / f"{self.name}.toml"
        config_file.write_text(
            "".join(
                f"[{section}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
                for section, values in self.sections.items()
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=cfg.kafka.bootstrap_servers,
            GOVHUB_TOPIC_PREFIX=cfg.kafka.topic_prefix,
            GOVHUB_KEK_FILE=str(cfg.crypto.kek_file),
            GOVHUB_STATE_DIR=str(state_dir),
            GOVHUB_METRICS_PORT="0",
            GOVHUB_ROUTER_GROUP_ID=cfg.router.group_id,
            GOVHUB_ROUTER_TRANSACTIONAL_ID=cfg.router.transactional_id,
            GOVHUB_GATEWAY_GROUP_ID=cfg.gateway.group_id,
        )
        env.update(self.env)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "--log-format", "text", "serve",
                 "--roles", self.roles, "--config", str(config_file)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
            )  # fmt: skip
        self.starts += 1

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        out = self.process.stdout
        poller = select.poll()  # not select(): the test process may hold 1,000+ sockets
        poller.register(out, select.POLLIN | select.POLLHUP)
        while time.monotonic() < deadline:
            if poller.poll(200):
                line = out.readline()
                if READY_LINE in line:
                    return
                if not line:
                    break  # the process closed its stdout: it died
        raise AssertionError(
            f"{self.name} did not start (exit {self.process.poll()}): {self.log_tail()}"
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process ends at once, mid-whatever it was doing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"{self.name} ignored SIGTERM: {self.log_tail()}") from None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the process's log, without the client library's connection
        chatter (a broker restart fills the log with it)."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join([line for line in text if "librdkafka" not in line][-lines:])


class RouterProcess(ServeProcess):
    """A router of the group; restarts keep its transactional id, so a restarted router
    fences the transaction its killed predecessor left open."""

    def __init__(
        self, config: HubConfig, name: str, transactional_id: str, settings: dict[str, int]
    ) -> None:
        super().__init__(
            config,
            name,
            "router",
            {"router": dict(settings)},
            {"GOVHUB_ROUTER_TRANSACTIONAL_ID": transactional_id},
        )
        self.transactional_id = transactional_id


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class GroupProbe:
    """The router group as the broker sees it: committed source offsets and rebalances.

    Committed offsets are read only while every killed router has been fenced by its
    successor: an open transaction of a killed instance keeps them unstable until then.
    """

    def __init__(self, bootstrap: str, group_id: str, source_topics: Iterable[str]) -> None:
        self.group_id = group_id
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "client.id": f"fault-probe-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._uncommitted = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"fault-probe-{uuid.uuid4().hex}",
                "isolation.level": "read_uncommitted",
            }
        )
        self._partitions: list[TopicPartition] = []
        for topic in source_topics:
            meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
            self._partitions += [TopicPartition(topic, p) for p in meta.partitions]

    def committed(self) -> int:
        """Source records whose routing the group has committed."""
        tps = self._consumer.committed(self._partitions, timeout=30)
        return sum(max(tp.offset, 0) for tp in tps)

    def wait_committed(self, at_least: int, timeout: float, routers: list[RouterProcess]) -> int:
        deadline = time.monotonic() + timeout
        now = -1
        while True:
            try:
                now = self.committed()
            except KafkaException as exc:
                # The coordinator moves or reloads while the broker restarts.
                err = exc.args[0]
                transient = err.retriable() or err.code() in TRANSIENT
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            if now >= at_least:
                return now
            dead = [r.name for r in routers if not r.alive]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"[{r.name}]\n{r.log_tail()}" for r in routers)
                raise AssertionError(
                    f"routers committed {now} of {at_least} wanted source records "
                    f"(dead: {dead or 'none'}) within {timeout:.0f}s\n{logs}"
                )
            time.sleep(0.05)

    def wait_for_open_transaction(self, delivery_topic: str, timeout: float = 10.0) -> bool:
        """Return once a delivery partition holds frames of a transaction that is not
        committed yet: its high watermark is past its last stable offset (what a
        read_committed client sees as the end). False if none showed within ``timeout``."""
        meta = self._consumer.list_topics(delivery_topic, timeout=10).topics[delivery_topic]
        tps = [TopicPartition(delivery_topic, p) for p in meta.partitions]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for tp in tps:
                _, written = self._uncommitted.get_watermark_offsets(tp, 10, cached=False)
                _, stable = self._consumer.get_watermark_offsets(tp, 10, cached=False)
                if written > stable:
                    return True
        return False

    def describe(self) -> tuple[ConsumerGroupState, dict[str, int]]:
        """The group's state and the number of source partitions each member holds."""
        future = self._admin.describe_consumer_groups([self.group_id])[self.group_id]
        group = future.result(timeout=10)
        owned = {
            m.client_id + "/" + m.member_id[-6:]: len(m.assignment.topic_partitions)
            for m in group.members
        }
        return group.state, owned

    def wait_for_rebalance(self, timeout: float = 30.0) -> ConsumerGroupState:
        """Return as soon as the group is rebalancing (members joining or syncing)."""
        rebalancing = (
            ConsumerGroupState.PREPARING_REBALANCING,
            ConsumerGroupState.COMPLETING_REBALANCING,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, _ = self.describe()
            if state in rebalancing:
                return state
            time.sleep(0.01)
        raise AssertionError(f"group {self.group_id} did not start rebalancing in {timeout}s")

    def wait_stable(self, members: int, timeout: float = 60.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        state, owned = self.describe()
        while time.monotonic() < deadline:
            state, owned = self.describe()
            if state is ConsumerGroupState.STABLE and len(owned) == members:
                return owned
            time.sleep(0.1)
        raise AssertionError(f"group not stable with {members} members: {state} {owned}")

    def close(self) -> None:
        self._consumer.close()
        self._uncommitted.close()
