"""Pacing by records per second: charged by entries, never dropping, debts paid by waiting."""

from __future__ import annotations

import pytest

from hub.gateway.pacing import Pacer, RecordBucket


def test_a_burst_of_one_second_then_the_rate() -> None:
    bucket = RecordBucket.new(100, now=0.0)
    assert bucket.take(60, 0.0) == 0.0
    assert bucket.take(40, 0.0) == 0.0
    assert bucket.take(50, 0.0) == pytest.approx(0.5)  # 50 records at 100/s
    assert bucket.take(10, 0.5) == pytest.approx(0.1)


def test_a_frame_larger_than_a_second_waits_longer_and_is_not_split() -> None:
    bucket = RecordBucket.new(10, now=0.0)
    assert bucket.take(35, 0.0) == pytest.approx(2.5)
    assert bucket.take(1, 3.6) == pytest.approx(0.0)  # paid off by then


def test_saved_allowance_is_capped_at_one_second() -> None:
    bucket = RecordBucket.new(10, now=0.0)
    bucket.take(10, 0.0)
    assert bucket.take(20, 100.0) == pytest.approx(1.0)


def test_long_run_rate_is_the_limit() -> None:
    bucket = RecordBucket.new(250, now=0.0)
    now, sent = 0.0, 0
    while now < 20.0:
        now += bucket.take(40, now)  # the sender sleeps what it is told
        sent += 40
    assert sent / now == pytest.approx(250, rel=0.05)


def test_pacer_per_subscription_and_limit_changes() -> None:
    pacer = Pacer()
    assert pacer.delay("s1", None, 1_000, 0.0) == 0.0
    assert pacer.delay("s1", 10, 10, 0.0) == 0.0
    assert pacer.delay("s2", 10, 10, 0.0) == 0.0  # its own bucket
    assert pacer.delay("s1", 10, 5, 0.0) == pytest.approx(0.5)
    assert pacer.delay("s1", 100, 50, 1.0) > 0.0  # the new limit applies from now
    assert len(pacer) == 2
    pacer.forget({"s1", "s2"})
    assert len(pacer) == 0
    with pytest.raises(ValueError):
        RecordBucket.new(0, 0.0)
