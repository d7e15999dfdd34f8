"""The api's token buckets on a fake clock."""

from __future__ import annotations

import pytest

from hub.api.security import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # buckets are per key
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.wait_time("a") == pytest.approx(0.5)
    clock.now += 10
    assert limiter.wait_time("a") == 0.0
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, no more


def test_keys_are_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock, max_keys=100)
    for i in range(1000):
        limiter.take(f"k{i}")
    assert len(limiter._buckets) <= 100


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
