"""The wake wheel: a stream's wait ends at the first sweep after its slot, and only then."""

from __future__ import annotations

import asyncio
import time

from hub.gateway.timers import LoopStalls, WakeWheel


class Sleeper:
    def __init__(self) -> None:
        self.wake_slot = 0
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def test_a_wait_ends_at_the_first_sweep_after_its_deadline() -> None:
    wheel = WakeWheel(0.25)
    early, late = Sleeper(), Sleeper()
    wheel.file(early, 10.1)
    wheel.file(late, 12.0)
    assert len(wheel) == 2
    assert wheel.sweep(10.0) == 0
    assert wheel.sweep(10.25) == 1  # slot (10.0, 10.25] has passed
    assert (early.woken, late.woken, early.wake_slot) == (1, 0, 0)
    assert wheel.sweep(11.99) == 0
    assert wheel.sweep(12.0) == 1
    assert late.woken == 1
    assert len(wheel) == 0


def test_refiling_and_unfiling_leave_one_entry_or_none() -> None:
    wheel = WakeWheel(0.25)
    sleeper = Sleeper()
    wheel.file(sleeper, 5.0)
    wheel.file(sleeper, 5.0)
    wheel.file(sleeper, 9.0)  # the stream waits again, longer
    assert len(wheel) == 1
    assert wheel.sweep(6.0) == 0
    wheel.unfile(sleeper)  # a frame came first
    wheel.unfile(sleeper)
    assert len(wheel) == 0
    assert wheel.sweep(100.0) == 0
    assert sleeper.woken == 0


def test_a_sweep_visits_only_due_slots() -> None:
    wheel = WakeWheel(1.0)
    sleepers = [Sleeper() for _ in range(1000)]
    for i, sleeper in enumerate(sleepers):
        wheel.file(sleeper, 100.0 + i % 10)
    assert wheel.sweep(104.0) == 500
    assert sum(s.woken for s in sleepers) == 500
    assert len(wheel) == 500


def test_session_waits_end_by_the_wheel_and_unfile_themselves() -> None:
    from hub.gateway.access import PartyAccess
    from hub.gateway.session import Session

    async def scenario() -> None:
        wheel = WakeWheel(0.25)
        access = PartyAccess("c1", "community", frozenset({"s1"}))
        session = Session(1, "c1", 0, "sse", access, 0, 1 << 20)
        session.wheel = wheel
        waiting = asyncio.ensure_future(session.wait(30.0))
        await asyncio.sleep(0)
        assert len(wheel) == 1 and not waiting.done()
        wheel.sweep(time.monotonic() + 60)
        await asyncio.wait_for(waiting, 5)
        assert len(wheel) == 0
        waiting = asyncio.ensure_future(session.wait(30.0))
        await asyncio.sleep(0)
        session.wake()  # a frame: the wait ends and leaves the wheel
        await asyncio.wait_for(waiting, 5)
        assert len(wheel) == 0

    asyncio.run(scenario())


def test_loop_stalls_keep_only_overshoots_beyond_the_threshold() -> None:
    stalls = LoopStalls(every_s=0.05, threshold_s=0.01, keep=2)
    stalls.note(0.002, 1.0, 0.002, 0.002)
    stalls.note(0.030, 2.0, 0.03, 0.03)
    stalls.note(0.020, 3.0, 0.001, 0.02)
    stalls.note(0.015, 4.0, 0.01, 0.01)
    stats = stalls.stats()
    assert stats["loop_stalls"] == 3
    assert stats["loop_stall_max_s"] == 0.03
    assert stats["loop_stalls_recent"] == [[3.0, 0.02, 0.001, 0.02], [4.0, 0.015, 0.01, 0.01]]
