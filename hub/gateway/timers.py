"""Waking thousands of idle streams without a timer each, and without visiting them all.

An idle stream waits for a frame, a keep-alive or its next position event, seconds away. A
timer per wait would put ten thousand entries into the event loop's heap and cancel most
of them; one sweep over every stream, every second, cost the gateway about 5 ms of CPU per
sweep at 10,000 streams — a stall of the whole fan-out, every second. Instead a wait is
*filed* under the time slot it ends in (a set operation), and each sweep wakes only the
streams of the slots that have passed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any, Protocol


class Sleeper(Protocol):
    """What the wheel needs of a stream: where it is filed, and a way to wake it."""

    wake_slot: int

    def wake(self) -> None: ...


class WakeWheel:
    """Wait deadlines filed by slot of ``slot_s`` seconds; :meth:`sweep` every ``slot_s``
    wakes a stream at most two slots after its deadline."""

    def __init__(self, slot_s: float = 0.25) -> None:
        if slot_s <= 0:
            raise ValueError("slot_s must be positive")
        self.slot_s = slot_s
        self._slots: dict[int, set[Sleeper]] = {}

    def __len__(self) -> int:
        return sum(len(group) for group in self._slots.values())

    def file(self, sleeper: Sleeper, wake_at: float) -> None:
        """``sleeper`` waits until ``wake_at`` (monotonic seconds); refiles it if filed."""
        slot = max(1, math.ceil(wake_at / self.slot_s))
        if sleeper.wake_slot == slot:
            return
        if sleeper.wake_slot:
            self.unfile(sleeper)
        group = self._slots.get(slot)
        if group is None:
            group = self._slots[slot] = set()
        group.add(sleeper)
        sleeper.wake_slot = slot

    def unfile(self, sleeper: Sleeper) -> None:
        """The wait ended otherwise (a frame came): forget it."""
        slot = sleeper.wake_slot
        if not slot:
            return
        sleeper.wake_slot = 0
        group = self._slots.get(slot)
        if group is not None:
            group.discard(sleeper)
            if not group:
                del self._slots[slot]

    def sweep(self, now: float) -> int:
        """Wake every stream whose slot ended by ``now``; returns how many."""
        last = math.floor(now / self.slot_s)
        due = [slot for slot in self._slots if slot <= last]
        woken = 0
        for slot in sorted(due):
            for sleeper in self._slots.pop(slot):
                sleeper.wake_slot = 0
                sleeper.wake()
                woken += 1
        return woken


class LoopStalls:
    """How late the event loop runs a timer: every stream waits while the loop is busy
    elsewhere (a long fan-out batch, a garbage collection, a sweep) or while the process
    waits for a CPU, so stalls are what a frame's tail latency is made of. Wakes
    ``every_s`` and records overshoots beyond ``threshold_s`` with their wall-clock time
    and the CPU time the loop's thread and the whole process used meanwhile: a stall in
    which the loop's thread hardly ran was spent waiting — for the GIL if the process's
    other threads ran, for a core if nothing of the process did."""

    def __init__(self, every_s: float = 0.05, threshold_s: float = 0.01, keep: int = 256) -> None:
        self.every_s = every_s
        self.threshold_s = threshold_s
        self.max_s = 0.0
        self.count = 0
        self.recent: deque[tuple[float, float, float, float]] = deque(maxlen=keep)

    def note(self, late_s: float, at: float, loop_cpu_s: float = 0.0, cpu_s: float = 0.0) -> None:
        if late_s > self.threshold_s:
            self.count += 1
            self.max_s = max(self.max_s, late_s)
            self.recent.append((at, late_s, loop_cpu_s, cpu_s))

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            loop_cpu, cpu = time.thread_time(), time.process_time()
            await asyncio.sleep(self.every_s)
            late = time.perf_counter() - started - self.every_s
            self.note(late, time.time(), time.thread_time() - loop_cpu, time.process_time() - cpu)

    def stats(self) -> dict[str, Any]:
        return {
            "loop_stalls": self.count,
            "loop_stall_max_s": round(self.max_s, 4),
            "loop_stalls_recent": [
                [round(at, 3), round(late, 4), round(loop_cpu, 4), round(cpu, 4)]
                for at, late, loop_cpu, cpu in self.recent
            ],
        }
