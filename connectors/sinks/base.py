"""The sink contract of the subscriber side."""

from __future__ import annotations

import base64
import decimal
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


def json_default(value: Any) -> Any:
    """``orjson`` fallback for decoded Avro values: decimals as strings, bytes as base64."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any, option: int = 0) -> bytes:
    """JSON for what sinks write (dates as ISO strings, decimals as strings)."""
    return orjson.dumps(value, default=json_default, option=option)


@dataclass(frozen=True, slots=True)
class DeliveredRecord:
    """One record as the subscriber receives it: the view's fields plus lineage."""

    resource: str
    subscription: str
    record_id: str
    source_topic: str
    source_partition: int
    source_offset: int
    ingested_at_ms: int
    received_at_ms: int
    data: dict[str, Any]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "subscription": self.subscription,
            "record_id": self.record_id,
            "source": f"{self.source_topic}/{self.source_partition}/{self.source_offset}",
            "ingested_at_ms": self.ingested_at_ms,
            "received_at_ms": self.received_at_ms,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the subscriber stands in its delivery partition, plus the replay guard state."""

    partition: int
    next_offset: int
    sequence: dict[str, Any]


class Sink(ABC):
    """Writes records together with the cursor, atomically where the target allows it:
    after a crash the sink's stored cursor says exactly which records it holds."""

    @abstractmethod
    def load_cursor(self) -> Cursor | None:
        """The cursor stored with the last successful write, or None for a new sink."""

    @abstractmethod
    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        """Store ``records`` and ``cursor``; raise to refuse (nothing is then acknowledged)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; idempotent."""
