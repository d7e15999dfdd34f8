"""Daily quotas across every data-service node of a hub: call counts in a compacted topic.

Each node counts its calls per subscription and UTC day (:class:`CallLimits`) and, once a
second, writes the counts that changed to ``<prefix>_govhub.dataservice-usage`` — one row
per node and subscription (key ``<node>|<subscription>``: ``{"node", "subscription",
"day", "calls", "at_ms"}``). Every node reads every row. A call is refused when this
node's count plus the other nodes' counts of the same day reach the quota, so a caller
cannot multiply its quota by spreading calls over the nodes.

The other nodes' counts are at most about a second old: calls spread over N nodes within
that second may pass the quota by what those nodes admitted meanwhile. A restarted node
takes its own count of the day back from its row, and rows of nodes that are gone still
count until the day ends — calls are never forgotten. Rate limits (calls per second)
stay per node: they protect each node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from hub.controlstate import CompactedTable
from hub.topics import COMPACTED, ensure_topics


def usage_topic(prefix: str) -> str:
    return f"{prefix}_govhub.dataservice-usage"


def _parse(value: Mapping[str, Any] | None) -> tuple[str, str, int, int] | None:
    """(node, subscription, day, calls) of a row, or None for a deleted or foreign row."""
    if value is None:
        return None
    try:
        return (
            str(value["node"]),
            str(value["subscription"]),
            int(value["day"]),
            int(value["calls"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


class UsageTotals:
    """Calls per (subscription, day) summed over the rows of *other* nodes; kept current
    row by row as the table reads them (a call looks one sum up, never the rows)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._rows: dict[str, tuple[str, int, int]] = {}  # row key -> (subscription, day, calls)
        self._own: dict[tuple[str, int], int] = {}
        self._others: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def apply(self, key: str, value: Mapping[str, Any] | None) -> None:
        row = _parse(value)
        with self._lock:
            old = self._rows.pop(key, None)
            node = key.partition("|")[0]
            if old is not None and node != self.node:
                slot = (old[0], old[1])
                left = self._others.get(slot, 0) - old[2]
                if left > 0:
                    self._others[slot] = left
                else:
                    self._others.pop(slot, None)
            if row is None:
                return
            row_node, subscription, day, calls = row
            self._rows[key] = (subscription, day, calls)
            if row_node == self.node:
                self._own[(subscription, day)] = calls
            else:
                slot = (subscription, day)
                self._others[slot] = self._others.get(slot, 0) + calls

    def others(self, subscription: str, day: int) -> int:
        """Calls other nodes admitted for ``subscription`` on UTC ``day``."""
        return self._others.get((subscription, day), 0)

    def own(self, subscription: str, day: int) -> int:
        """This node's count as last written (what a restarted node resumes from)."""
        return self._own.get((subscription, day), 0)


class SharedUsage:
    """The usage table of one node: read everyone's counts, write this node's."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        node: str,
        client_config: Mapping[str, str] | None = None,
    ) -> None:
        if "|" in node:
            raise ValueError(f"node name {node!r} must not contain '|'")
        self.topic = usage_topic(prefix)
        self.node = node
        self.totals = UsageTotals(node)
        self._table = CompactedTable(bootstrap, self.topic, client_config=client_config)
        self._table.add_listener(self.totals.apply)
        self._written: dict[str, tuple[int, int]] = {}

    def start(self, admin: object, replication_factor: int = -1, timeout: float = 30.0) -> None:
        ensure_topics(admin, {self.topic: (1, COMPACTED)}, replication_factor)  # type: ignore[arg-type]
        self._table.start(timeout)

    def stop(self) -> None:
        self._table.stop()

    def publish(self, counts: Mapping[str, tuple[int, int]], timeout: float = 10.0) -> int:
        """Write this node's ``{subscription: (day, calls)}`` where it changed since the
        last write; returns the rows written. Blocks until Kafka acknowledged them (run it
        off the event loop)."""
        now = int(time.time() * 1000)
        rows = [
            (
                f"{self.node}|{subscription}",
                {
                    "node": self.node,
                    "subscription": subscription,
                    "day": day,
                    "calls": calls,
                    "at_ms": now,
                },
            )
            for subscription, (day, calls) in counts.items()
            if self._written.get(subscription) != (day, calls)
        ]
        if not rows:
            return 0
        self._table.put_many(rows, timeout, read_back=False)
        for subscription, (day, calls) in counts.items():
            self._written[subscription] = (day, calls)
        return len(rows)
