"""Frames and entries for crypto tests."""

from __future__ import annotations

import os

from hub.crypto import FrameEntry, FrameHeader, PayloadSuite

RECIPIENT = "330106001000"
KEY_ID = bytes(range(16))


def make_entries(count: int = 3, partition: int = 3, first_offset: int = 100) -> list[FrameEntry]:
    return [
        FrameEntry(
            schema_id=7,
            topic="govhub.src.scj.enterprise",
            partition=partition,
            offset=first_offset + i,
            record_id=f"rec-{i:04d}",
            ingested_at_ms=1_700_000_000_000 + i,
            payload=os.urandom(40 + i),
        )
        for i in range(count)
    ]


def make_header(
    suite: PayloadSuite = PayloadSuite.AES_256_GCM,
    recipient: str = RECIPIENT,
    partition: int = 3,
    first_offset: int = 100,
    last_offset: int = 102,
    subscription: str = "sub-0001",
    resource: str = "enterprise-registration",
) -> FrameHeader:
    return FrameHeader(
        suite=suite,
        recipient=recipient,
        resource=resource,
        subscription=subscription,
        key_id=KEY_ID,
        source_partition=partition,
        first_offset=first_offset,
        last_offset=last_offset,
    )
