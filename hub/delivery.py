"""Delivery topic layout shared by the router (writer) and subscribers (readers).

All frames of one recipient go to one partition of the delivery topic, so that
partition's offsets are the recipient's total order and its resume cursor.
"""

from __future__ import annotations

import zlib

RECORD_COUNT_HEADER = "govhub-entries"


def delivery_partition(recipient: str, num_partitions: int) -> int:
    """The delivery partition of ``recipient`` (stable across languages: CRC-32 of UTF-8)."""
    if num_partitions <= 0:
        raise ValueError("num_partitions must be positive")
    return zlib.crc32(recipient.encode()) % num_partitions
