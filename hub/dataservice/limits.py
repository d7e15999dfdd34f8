"""Rate limits and quotas per subscription, on this node.

The rate is the subscription's ``rate_limit_per_s`` (or the node's default): a token
bucket holding at most one second of calls. The quota counts calls per UTC day. Both are
per node: with N nodes a caller may reach N times the rate — the per-node figure is what
protects each node, and the audit trail holds the total.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

_DAY_S = 86_400


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    day: int
    used_today: int


class CallLimits:
    def __init__(self, daily_quota: int | None) -> None:
        self._quota = daily_quota
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def admit(self, subscription: str, rate_per_s: int | None, cost: int = 1) -> str | None:
        """``None`` when the call may proceed, else the refusal: ``rate-limited`` or
        ``quota``. ``cost`` counts keys of a batch call against the rate."""
        now = time.monotonic()
        day = int(time.time()) // _DAY_S
        with self._lock:
            bucket = self._buckets.get(subscription)
            if bucket is None:
                burst = float(rate_per_s or 0)
                bucket = self._buckets[subscription] = _Bucket(burst, now, day, 0)
            if bucket.day != day:
                bucket.day, bucket.used_today = day, 0
            if self._quota is not None and bucket.used_today + 1 > self._quota:
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
            return None
