"""Which gateway owns which delivery partition, kept in a compacted topic.

Gateways of one hub form a Kafka consumer group over the delivery topic; the group assigns
each partition to one of them. Each instance writes its row — URL, owned partitions, when
it got them, a heartbeat — to ``<prefix>_govhub.gateways`` and reads everyone's. A gateway
that a subscriber reaches but that does not own the subscriber's partition redirects it to
the owner found here; rows whose heartbeat is older than three intervals (a killed
instance) are ignored, and when two rows claim a partition during a rebalance the newer
claim wins. A wrong guess costs one extra hop at most: a redirected request is always
served where it lands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from hub.controlstate import CompactedTable
from hub.topics import COMPACTED, ensure_topics

log = logging.getLogger(__name__)


def directory_topic(prefix: str) -> str:
    return f"{prefix}_govhub.gateways"


@dataclass(frozen=True, slots=True)
class GatewayRow:
    instance: str
    url: str
    partitions: frozenset[int]
    since_ms: int
    heartbeat_ms: int

    @classmethod
    def parse(cls, row: Mapping[str, object]) -> GatewayRow | None:
        try:
            parts = row["partitions"]
            if not isinstance(parts, list):
                return None
            return cls(
                str(row["instance"]),
                str(row["url"]),
                frozenset(int(p) for p in parts),
                int(str(row["since_ms"])),
                int(str(row["heartbeat_ms"])),
            )
        except (KeyError, TypeError, ValueError):
            return None


class GatewayDirectory:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        instance: str,
        heartbeat_s: float,
        client_config: Mapping[str, str] | None = None,
    ) -> None:
        self.topic = directory_topic(prefix)
        self.instance = instance
        self._bootstrap = bootstrap
        self._client_config = dict(client_config or {})
        self._heartbeat_ms = int(heartbeat_s * 1000)
        self._table = CompactedTable(bootstrap, self.topic, client_config=self._client_config)
        self._parsed: dict[str, tuple[object, GatewayRow | None]] = {}
        self.url = ""
        self._partitions: frozenset[int] = frozenset()
        self._since_ms = 0
        self._stopped = False

    def start(self, admin: object, replication_factor: int = -1, timeout: float = 30.0) -> None:
        ensure_topics(admin, {self.topic: (1, COMPACTED)}, replication_factor)  # type: ignore[arg-type]
        self._table.start(timeout)

    def stop(self) -> None:
        self._stopped = True
        try:
            self._table.put(self.instance, None, timeout=5, read_back=False)
        except Exception as exc:  # the row then ages out by its heartbeat
            log.info("could not remove the gateway directory row: %s", exc)
        self._table.stop()

    def announce(self, partitions: frozenset[int] | None = None) -> None:
        """Write this instance's row (on a new assignment, and as the heartbeat)."""
        if self._stopped:
            return
        now = int(time.time() * 1000)
        if partitions is not None and partitions != self._partitions:
            self._partitions = partitions
            self._since_ms = now
        self._table.put(
            self.instance,
            {
                "instance": self.instance,
                "url": self.url,
                "partitions": sorted(self._partitions),
                "since_ms": self._since_ms,
                "heartbeat_ms": now,
            },
            read_back=False,
        )

    def rows(self) -> list[GatewayRow]:
        out = []
        for key, row in self._table.items():
            cached = self._parsed.get(key)
            if cached is None or cached[0] is not row:
                cached = self._parsed[key] = (row, GatewayRow.parse(row))
            if cached[1] is not None:
                out.append(cached[1])
        return out

    def owner(self, partition: int, now_ms: int | None = None) -> GatewayRow | None:
        """The live gateway holding the newest claim on ``partition``."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        fresh = now - 3 * self._heartbeat_ms
        best: GatewayRow | None = None
        for row in self.rows():
            if (
                partition in row.partitions
                and row.heartbeat_ms >= fresh
                and (best is None or row.since_ms > best.since_ms)
            ):
                best = row
        return best
