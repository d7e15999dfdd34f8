"""Subscriber views applied to Avro binary records without decoding them (C extension)."""

from typing import Any, final

MAX_DEPTH: int
_C_API: object  # a capsule: the HubSpliceAPI for native callers (see _splice.c)

class SpliceError(ValueError):
    """An Avro payload that does not decode with the writer schema of a splice program."""

@final
class Program:
    """A view compiled to run on Avro binary records (the op list: hub/policy/_splice.c)."""

    @property
    def fields(self) -> tuple[str, ...]: ...
    @property
    def growth(self) -> int: ...
    def __init__(
        self, types: tuple[tuple[Any, ...], ...], ops: tuple[tuple[Any, ...], ...]
    ) -> None: ...
    def __call__(self, payload: bytes | bytearray | memoryview, /) -> bytes: ...
    def apply(self, payload: bytes | bytearray | memoryview, /) -> bytes: ...
    def max_output(self, length: int, /) -> int: ...
