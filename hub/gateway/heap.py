"""Keeping Python's cyclic garbage collector out of the delivery path.

A gateway holding 10,000 streams has about a million long-lived objects (the control
state, and some seventy per connection in aiohttp and the stream). CPython's full
collections scan all of them: about a second on a small machine, every time enough new
objects survived — several times a minute while streams connect or buffers fill, and
each one stalls every stream.

The long-lived heap is therefore *frozen* (:func:`gc.freeze`, an O(1) move to a
generation the collector does not scan), and frozen again every second. Freezing only
now and then is not enough: a stream at work keeps replacing its long-lived objects (the
future its handler waits on, the coroutine frames around it), and each one freed from the
frozen generation lowers the young generation's count as much as its replacement raised
it. The count then stays under the threshold while the young generation fills with the
replacements: in the benchmark a young collection came every 5–15 s and scanned 130,000
objects, 40–100 ms of CPU each, every stream stalled meanwhile. Frozen every second, the
young generation holds one second of survivors and is rarely scanned at all.

Frozen objects are still freed by reference counting as usual; only garbage *cycles*
among them wait for the next maintenance, which unfreezes, collects fully and freezes
again (``gc_collect_interval_s``, every ten minutes by default: one pause of about a
second). The gateway's delivery path makes almost none (young collections of it found
0–8 cyclic objects each).
"""

from __future__ import annotations

import gc
import logging
import time
from collections import deque
from typing import Any

from hub import metrics

log = logging.getLogger(__name__)

YOUNG_THRESHOLDS = (20_000, 50, 100)
RECENT_PAUSES = 64


class HeapKeeper:
    def __init__(self, collect_interval_s: float) -> None:
        self.collect_interval_s = collect_interval_s
        self.pause_total_s = 0.0
        self.pause_max_s = 0.0
        self.collections = [0, 0, 0]
        # (wall clock, generation, seconds) of the latest pauses: a benchmark matches them
        # against the window it measured.
        self.recent: deque[tuple[float, int, float]] = deque(maxlen=RECENT_PAUSES)
        self._last_collect = 0.0
        self._started = 0.0
        self._installed = False
        self._thresholds: tuple[int, int, int] = gc.get_threshold()
        self.frozen_at_collect = 0

    def install(self) -> None:
        """Count collection pauses, collect once and freeze what start-up built, and make
        young collections rarer: a busy gateway allocates a few objects per frame that die
        at once, and the default thresholds (700, 10, 10) would scan again every 70,000
        allocations whatever survived."""
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._thresholds = gc.get_threshold()
            gc.set_threshold(*YOUNG_THRESHOLDS)
            self._installed = True
        self._full()

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._on_gc)
            gc.set_threshold(*self._thresholds)
            self._installed = False
            gc.unfreeze()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.pause_total_s += pause
        self.pause_max_s = max(self.pause_max_s, pause)
        generation = int(info.get("generation", 0))
        self.collections[generation] += 1
        self.recent.append((time.time(), generation, pause))
        metrics.GATEWAY_GC_PAUSE.labels(str(generation)).observe(pause)

    def tick(self) -> None:
        """Called every second: freeze what survived since the last tick (O(1)), or run
        the full collection when it is due."""
        if time.monotonic() - self._last_collect >= self.collect_interval_s:
            self._full()
        else:
            gc.freeze()

    def _full(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        took = time.perf_counter() - started
        # Counting frozen objects walks all of them (milliseconds for a million): done
        # here, inside the pause the collection takes anyway, never on a readiness probe.
        self.frozen_at_collect = gc.get_freeze_count()
        self._last_collect = time.monotonic()
        log.info("full garbage collection", extra={"seconds": round(took, 3)})

    def stats(self) -> dict[str, Any]:
        return {
            "gc_pause_total_s": round(self.pause_total_s, 3),
            "gc_pause_max_s": round(self.pause_max_s, 3),
            "gc_collections": list(self.collections),
            "gc_frozen_objects_at_last_collect": self.frozen_at_collect,
            "gc_recent": [[round(at, 3), gen, round(pause, 4)] for at, gen, pause in self.recent],
        }
