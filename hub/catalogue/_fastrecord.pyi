"""Catalogue admission (quality rules and Avro encoding) compiled per resource (C extension)."""

from collections.abc import Callable, Container, Sequence
from typing import Any, final

@final
class Program:
    """The admission of records into one resource (the field plan: _fastrecord.c)."""

    def __init__(
        self,
        fields: tuple[tuple[Any, ...], ...],
        schema_id: int,
        key_index: int,
        region_index: int,
        fallback: Callable[[Any, Any], Any],
    ) -> None: ...
    def fast(
        self, record: object, regions: Container[str] | None, /
    ) -> tuple[bytes, str, str] | None: ...
    def admit(self, record: object, regions: Container[str] | None, /) -> Any: ...
    def admit_batch(
        self, records: Sequence[object | None], regions: Container[str] | None, /
    ) -> list[Any]: ...
