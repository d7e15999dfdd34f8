"""Loopback port checks: is a port free to listen on, does something answer on it."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterable

from hub.localkafka.config import LOOPBACK, ClusterLayout
from hub.localkafka.errors import LocalKafkaError

# Below Linux's ephemeral range (32768+), so outgoing connections never hold them.
SEARCH_LOW = 20000
SEARCH_HIGH = 32000


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when a server could listen on ``host:port`` now (SO_REUSEADDR, as the JVM does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def first_taken(ports: Iterable[int]) -> int | None:
    """The first port of ``ports`` that cannot be listened on, or None."""
    return next((port for port in ports if not port_is_free(port)), None)


def find_free_base_port(
    nodes: int = 1, low: int = SEARCH_LOW, high: int = SEARCH_HIGH, attempts: int = 200
) -> int:
    """A base port whose ``2 * nodes`` consecutive ports are all free, picked at random."""
    span = 2 * nodes
    rng = random.Random(time.monotonic_ns())
    for _ in range(attempts):
        base = rng.randrange(low, high - span) & ~1
        if first_taken(range(base, base + span)) is None:
            return base
    raise LocalKafkaError(f"no {span} consecutive free ports found in {low}..{high}")


def require_free(layout: ClusterLayout, node_ids: Iterable[int]) -> None:
    """Fail with a one-line hint when a port of ``node_ids`` is held by another program."""
    for node_id in node_ids:
        taken = first_taken(layout.ports(node_id))
        if taken is not None:
            suggestion = find_free_base_port(layout.nodes)
            raise LocalKafkaError(
                f"port {taken} on {LOOPBACK} is in use by another program: stop it, or choose "
                f"other ports with --base-port (e.g. --base-port {suggestion})"
            )
