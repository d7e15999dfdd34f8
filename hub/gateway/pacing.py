"""Per-subscription delivery pacing: a subscription's ``rate_limit_per_s`` in records.

A frame carries many records (its ``govhub-entries`` header counts them), so the bucket
is charged by entries, not by frames. A frame is never split and never dropped: if the
bucket is short, the sender waits until the debt is paid, and a frame larger than one
second's allowance simply waits longer. The time spent waiting is reported so operators
see who is held back by their own limit rather than by the hub.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RecordBucket:
    """Token bucket in records: ``rate`` per second, at most one second's worth saved."""

    rate: float
    tokens: float
    updated: float

    @classmethod
    def new(cls, rate_per_s: int, now: float) -> RecordBucket:
        if rate_per_s < 1:
            raise ValueError("rate_per_s must be at least 1")
        return cls(float(rate_per_s), float(rate_per_s), now)

    def set_rate(self, rate_per_s: int, now: float) -> None:
        """A changed limit applies from now on; what was saved stays within the new cap."""
        self._refill(now)
        self.rate = float(rate_per_s)
        self.tokens = min(self.tokens, self.rate)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, records: int, now: float) -> float:
        """Charge ``records``; returns how many seconds to wait before sending them."""
        self._refill(now)
        self.tokens -= records
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate


class Pacer:
    """The buckets of every rate-limited subscription served by this gateway process.

    Several streams of one subscriber (a reconnect that overlaps the old stream, a
    long-poll that lingers) share one bucket, so the limit holds per subscription.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, RecordBucket] = {}

    def delay(self, subscription: str, limit: int | None, records: int, now: float) -> float:
        if limit is None:
            if self._buckets:
                self._buckets.pop(subscription, None)
            return 0.0
        bucket = self._buckets.get(subscription)
        if bucket is None:
            bucket = self._buckets[subscription] = RecordBucket.new(limit, now)
        elif bucket.rate != limit:
            bucket.set_rate(limit, now)
        return bucket.take(records, now)

    def forget(self, subscriptions: set[str]) -> None:
        """Drop buckets no stream uses any more."""
        for sub in subscriptions:
            self._buckets.pop(sub, None)

    def __len__(self) -> int:
        return len(self._buckets)
