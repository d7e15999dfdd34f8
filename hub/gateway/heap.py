"""Keeping Python's cyclic garbage collector out of the delivery path.

A gateway holding 10,000 streams has about a million long-lived objects (the control
state, and some seventy per connection in aiohttp and the stream). CPython's full
collections scan all of them: about a second on a small machine, every time enough new
objects survived — several times a minute while streams connect or buffers fill, and
each one stalls every stream.

The long-lived heap hardly changes once streams are up, so it is *frozen*
(:func:`gc.freeze`, an O(1) move to a generation the collector does not scan) whenever a
good number of streams came in since the last freeze, and otherwise once a minute. Frozen
objects are still freed by reference counting as usual; only garbage *cycles* among them
wait for the next maintenance, which unfreezes, collects fully and freezes again
(``gc_collect_interval_s``, every ten minutes by default: one pause of about a second).
"""

from __future__ import annotations

import gc
import logging
import time
from collections import deque
from typing import Any

from hub import metrics

log = logging.getLogger(__name__)

FREEZE_AFTER_STREAMS = 500
FREEZE_AFTER_S = 60.0
YOUNG_THRESHOLDS = (20_000, 50, 100)
RECENT_PAUSES = 64


class HeapKeeper:
    def __init__(self, collect_interval_s: float) -> None:
        self.collect_interval_s = collect_interval_s
        self.new_streams = 0
        self.pause_total_s = 0.0
        self.pause_max_s = 0.0
        self.collections = [0, 0, 0]
        # (wall clock, generation, seconds) of the latest pauses: a benchmark matches them
        # against the window it measured.
        self.recent: deque[tuple[float, int, float]] = deque(maxlen=RECENT_PAUSES)
        self._last_freeze = 0.0
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

    def stream_opened(self) -> None:
        self.new_streams += 1

    def tick(self) -> None:
        """Called every second: freeze new long-lived objects, collect when due."""
        now = time.monotonic()
        if now - self._last_collect >= self.collect_interval_s:
            self._full()
        elif self.new_streams >= FREEZE_AFTER_STREAMS or (
            self.new_streams and now - self._last_freeze >= FREEZE_AFTER_S
        ):
            gc.freeze()
            self.new_streams = 0
            self._last_freeze = now

    def _full(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        took = time.perf_counter() - started
        # Counting frozen objects walks all of them (milliseconds for a million): done
        # here, inside the pause the collection takes anyway, never on a readiness probe.
        self.frozen_at_collect = gc.get_freeze_count()
        self._last_collect = self._last_freeze = time.monotonic()
        self.new_streams = 0
        log.info("full garbage collection", extra={"seconds": round(took, 3)})

    def stats(self) -> dict[str, Any]:
        return {
            "gc_pause_total_s": round(self.pause_total_s, 3),
            "gc_pause_max_s": round(self.pause_max_s, 3),
            "gc_collections": list(self.collections),
            "gc_frozen_objects_at_last_collect": self.frozen_at_collect,
            "gc_recent": [[round(at, 3), gen, round(pause, 4)] for at, gen, pause in self.recent],
        }
