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


def test_each_tick_freezes_what_survived_so_young_collections_stay_small() -> None:
    keeper = HeapKeeper(collect_interval_s=3600)
    keeper.install()
    try:
        # A working stream replaces frozen objects with new ones (its next wait's future):
        # the frozen ones are freed, so the young count does not grow with the newcomers.
        replaced = [[i] for i in range(5_000)]
        gc.freeze()
        del replaced
        newcomers = [[i] for i in range(5_000)]
        assert gc.get_count()[0] < 5_000  # frees from the frozen heap lowered the count
        young = {id(o) for o in gc.get_objects(0)} | {id(o) for o in gc.get_objects(1)}
        assert sum(id(o) in young for o in newcomers) == len(newcomers)
        keeper.tick()  # not due for a full collection: freezes, O(1)
        young = {id(o) for o in gc.get_objects(0)} | {id(o) for o in gc.get_objects(1)}
        assert not any(id(o) in young for o in newcomers)
        assert gc.get_count()[0] == 0
        assert keeper.stats()["gc_collections"][2] == 1  # only the one at install
    finally:
        keeper.uninstall()
