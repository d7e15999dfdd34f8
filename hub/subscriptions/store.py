"""Read-modify-write on a compacted control table shared by several api instances.

Before a step reads the current record it calls :func:`catch_up`: a marker (a tombstone
for a key that never holds a value) is written and read back, so the table has read every
record written before it — by any instance. Schema Registry's leader does the same with
a no-op record. Then the step compares versions and writes; only writes racing within the
same few milliseconds can still both land (the later one wins).
"""

from __future__ import annotations

from hub.controlstate import CompactedTable

SYNC_KEY = "_sync"  # never a party or subscription id (those start with a letter or digit)


def catch_up(table: CompactedTable, timeout: float = 10.0) -> None:
    """Return once ``table`` has read everything written to its topic before this call."""
    table.put(SYNC_KEY, None, timeout)
