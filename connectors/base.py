"""The source contract: connect, read batches with their positions, close."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record read from a department system, with its stable identity."""

    record_id: str  # stable across re-reads: derived from the source position
    value: Mapping[str, Any] | None  # None: the input could not be parsed
    position: Mapping[str, Any]  # what the checkpoint stores once this record is acked
    raw: bytes = b""  # the input as read, for dead letters when it could not be parsed
    error: str | None = None


class Source(ABC):
    """A department-side source. Positions are committed only after Kafka acked."""

    @abstractmethod
    def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        """Open the source, resuming after ``checkpoint`` (None: from the beginning)."""

    @abstractmethod
    def read(self, max_records: int) -> list[SourceRecord]:
        """Up to ``max_records`` new records; an empty list when nothing is pending."""

    @abstractmethod
    def close(self) -> None:
        """Release the source; idempotent."""
