"""Rate limits and quotas per subscription.

The rate is the subscription's ``rate_limit_per_s`` (or the node's default): a token
bucket holding at most one second of calls, per node — with N nodes a caller may reach N
times the rate; the per-node figure is what protects each node. The quota counts calls
per UTC day across all nodes when the node shares its counts
(:class:`hub.dataservice.usage.SharedUsage`: ``others`` gives the other nodes' count,
``resume`` this node's count written before a restart), else on this node alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_DAY_S = 86_400


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    day: int
    used_today: int


DayCount = Callable[[str, int], int]


def _none(subscription: str, day: int) -> int:
    return 0


class CallLimits:
    def __init__(
        self,
        daily_quota: int | None,
        others: DayCount | None = None,
        resume: DayCount | None = None,
    ) -> None:
        self._quota = daily_quota
        self._others = others or _none
        self._resume = resume or _none
        self._buckets: dict[str, _Bucket] = {}
        self._changed: set[str] = set()
        self._lock = threading.Lock()

    def unchanged(self, counts: dict[str, tuple[int, int]]) -> None:
        """Counts from :meth:`changed` that could not be shared: offer them again."""
        with self._lock:
            self._changed.update(counts)

    def changed(self) -> dict[str, tuple[int, int]]:
        """``{subscription: (day, calls today)}`` of every subscription whose count moved
        since the last call (what the node shares)."""
        with self._lock:
            names, self._changed = self._changed, set()
            return {
                name: (bucket.day, bucket.used_today)
                for name in names
                if (bucket := self._buckets.get(name)) is not None
            }

    def admit(self, subscription: str, rate_per_s: int | None, cost: int = 1) -> str | None:
        """``None`` when the call may proceed, else the refusal: ``rate-limited`` or
        ``quota``. ``cost`` counts keys of a batch call against the rate."""
        now = time.monotonic()
        day = int(time.time()) // _DAY_S
        with self._lock:
            bucket = self._buckets.get(subscription)
            if bucket is None:
                burst = float(rate_per_s or 0)
                resumed = self._resume(subscription, day)
                bucket = self._buckets[subscription] = _Bucket(burst, now, day, resumed)
            if bucket.day != day:
                bucket.day, bucket.used_today = day, 0
            if (
                self._quota is not None
                and bucket.used_today + self._others(subscription, day) + 1 > self._quota
            ):
                return "quota"
            if rate_per_s is not None:
                bucket.tokens = min(
                    float(rate_per_s), bucket.tokens + (now - bucket.updated) * rate_per_s
                )
                bucket.updated = now
                need = min(cost, rate_per_s)  # a batch larger than the rate still passes
                if bucket.tokens < need:
                    return "rate-limited"
                bucket.tokens -= need
            bucket.used_today += 1
            self._changed.add(subscription)
            return None
