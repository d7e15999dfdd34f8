from collections.abc import Callable
from typing import Any

def route(
    messages: list[Any],
    cache: dict[Any, Any],
    resolve: Callable[[str, bytes, int], Any],
    max_entries: int,
    max_bytes: int,
    /,
) -> tuple[
    list[tuple[int, int, bytes, int, int, int]],
    list[tuple[int, Any, str | None]],
    list[tuple[int, int, int]],
]: ...
def lineage(block: bytes) -> tuple[list[str], list[list[int]], list[int]]: ...
