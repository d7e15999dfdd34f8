"""The heap keeper: freezing, full collections, and stats cheap enough for a probe."""

from __future__ import annotations

import gc

from hub.gateway.heap import HeapKeeper


def test_stats_do_not_walk_the_frozen_heap_and_collections_are_counted() -> None:
    keeper = HeapKeeper(collect_interval_s=3600)
    before = gc.get_threshold()
    keeper.install()
    try:
        frozen = keeper.frozen_at_collect
        assert frozen > 0  # (frozen objects freed since by reference counting leave it)
        held = [[i] for i in range(50_000)]  # long-lived objects built after start-up
        gc.freeze()
        stats = keeper.stats()
        # The probe reports the figure of the last full collection, not a fresh walk.
        assert stats["gc_frozen_objects_at_last_collect"] == frozen
        gc.collect(0)
        assert keeper.stats()["gc_collections"][0] >= 1
        keeper._full()
        assert keeper.frozen_at_collect >= len(held)
        assert keeper.stats()["gc_frozen_objects_at_last_collect"] == keeper.frozen_at_collect
    finally:
        keeper.uninstall()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
