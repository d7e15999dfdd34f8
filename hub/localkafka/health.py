"""Is the cluster serving? Ports first, then an AdminClient metadata request."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from hub.localkafka.config import ClusterLayout
from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.node import NodeFiles
from hub.localkafka.ports import port_answers
from hub.localkafka.process import is_node_process

POLL_INTERVAL_S = 0.2


def admin_client(
    bootstrap_servers: str, client_config: Mapping[str, str] | None = None
) -> AdminClient:
    """An AdminClient that fails fast and stays quiet while brokers are still starting;
    ``client_config``: the admin principal's settings of a secure cluster."""
    return AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "socket.connection.setup.timeout.ms": 2000,
            "reconnect.backoff.max.ms": 500,
            "log_level": 0,
            **(client_config or {}),
        }
    )


def probe(
    layout: ClusterLayout, timeout: float, client_config: Mapping[str, str] | None = None
) -> tuple[bool, str]:
    """Ask for metadata: healthy when every node is a registered broker. (ok, why not)."""
    try:
        admin = admin_client(layout.bootstrap_servers, client_config)
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return False, f"metadata request failed: {exc.args[0] if exc.args else exc}"
    if len(metadata.brokers) < layout.nodes:
        return False, f"{len(metadata.brokers)} of {layout.nodes} brokers registered"
    return True, ""


def wait_ready(
    layout: ClusterLayout,
    started: Mapping[int, NodeFiles],
    timeout: float,
    client_config: Mapping[str, str] | None = None,
) -> None:
    """Wait until the cluster serves metadata; fail at once if a started node exits.

    ``started`` maps the PID of each node started by this call to its files.
    """
    deadline = time.monotonic() + timeout
    while True:
        for pid, files in started.items():
            if not is_node_process(pid, files.properties):
                raise LocalKafkaError(
                    f"kafka node {files.node_id} exited while starting: {files.log_tail()}; "
                    f"see {files.log}"
                )
        remaining = deadline - time.monotonic()
        if all(port_answers(layout.broker_port(i)) for i in layout.node_ids):
            ready, _ = probe(layout, max(0.5, min(2.0, remaining)), client_config)
            if ready:
                return
        if time.monotonic() >= deadline:
            first = next(iter(started.values()), None)
            where = f"{first.log_tail()}; see {first.log}" if first else "no node was started"
            raise LocalKafkaError(
                f"kafka not ready after {timeout:.0f} s: {where} "
                "(raise --timeout if the machine is busy)"
            )
        time.sleep(POLL_INTERVAL_S)
