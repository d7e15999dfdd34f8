"""The connector contracts (style: small ABCs, one job each).

A **source** (department side) implements ``connect``, ``read``, ``ack`` and ``close``. The
runner publishes what ``read`` returned, waits until Kafka acknowledged every record and the
checkpoint is written, and only then calls ``ack`` — so a source may only forget input
(delete a file, answer an HTTP caller, advance a database cursor) after it is safe in Kafka.

A **sink** (subscriber side, driven by the SDK) is in ``connectors/sinks/base.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hub.catalogue.model import Resource
    from hub.registry.schemas import AvroCodec


class PartyRows(Protocol):
    """Party documents by id: a ``CompactedTable`` of ``_govhub.parties``, or a dict."""

    def get(self, key: str, /) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record read from a department system, with its stable identity."""

    record_id: str  # stable across re-reads: derived from the source position or business key
    value: Mapping[str, Any] | None  # None: the input could not be parsed
    position: Mapping[str, Any]  # what the checkpoint stores once this record is acked
    raw: bytes = b""  # the input as read, for dead letters when it could not be parsed
    error: str | None = None


class Backpressure(Exception):
    """The target is busy: try the same batch again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, reason: str = "busy") -> None:
        super().__init__(f"{reason}; retry after {retry_after:.1f}s")
        self.retry_after = retry_after
        self.reason = reason


class Source(ABC):
    """A department-side source. Positions are committed only after Kafka acked."""

    name: str

    @abstractmethod
    async def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        """Open the source, resuming after ``checkpoint`` (None: from the beginning)."""

    @abstractmethod
    async def read(self, max_records: int) -> list[SourceRecord]:
        """Up to ``max_records`` new records; an empty list when nothing is pending now."""

    async def ack(self, records: Sequence[SourceRecord]) -> None:  # noqa: B027 - optional
        """``records`` are in Kafka and checkpointed: the source may let go of them."""

    @abstractmethod
    async def close(self) -> None:
        """Release the source; idempotent."""

    def bind(  # noqa: B027 - optional hook, most sources need nothing
        self,
        resource: Resource,
        codec: AvroCodec,
        parties: PartyRows | None = None,
        regions: Container[str] | None = None,
    ) -> None:
        """The runner hands over the resource it publishes, its schema codec, the live
        parties table and the known region codes, for sources that check input up front
        (e.g. to answer an HTTP caller at once)."""

    def lag(self) -> float | None:
        """How far behind the source the connector is (records or seconds; None: unknown)."""
        return None

    async def __aenter__(self) -> Source:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
