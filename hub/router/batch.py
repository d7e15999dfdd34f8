"""The router's per-record loop: native when built, the same loop in Python otherwise.

``route(messages, cache, resolve, max_entries, max_bytes) -> (blocks, dead, stats)``; the
contract is documented at the top of ``_batch.c``. :func:`route_python` is the reference
implementation: the native one must produce the same blocks for the same input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

Plan = tuple[int, tuple[tuple[Callable[[bytes], bytes | None] | None, int, tuple[int, ...]], ...]]
Block = tuple[int, int, bytes, int, int, int]
Dead = tuple[int, Any, str | None]
Stat = tuple[int, int, int]
RouteFn = Callable[
    [list[Any], dict[Any, Any], Callable[[str, bytes, int], Any], int, int],
    tuple[list[Block], list[Dead], list[Stat]],
]

_ENTRY = struct.Struct(">iiqqHHI")
_COUNT = struct.Struct(">I")
_INGESTED_MAX_DIGITS = 18


class _Pending:
    __slots__ = ("count", "first", "last", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 4
        self.count = 0
        self.first = self.last = 0


def route_python(
    messages: Sequence[Any],
    cache: dict[Any, Any],
    resolve: Callable[[str, bytes, int], Any],
    max_entries: int,
    max_bytes: int,
) -> tuple[list[Block], list[Dead], list[Stat]]:
    if max_entries < 1 or max_bytes < 64:
        raise ValueError("max_entries must be >= 1 and max_bytes >= 64")
    blocks: list[Block] = []
    dead: list[Dead] = []
    stats: dict[int, list[int]] = {}
    pending: dict[tuple[int, int], _Pending] = {}

    def finish(key: tuple[int, int], p: _Pending) -> None:
        if p.count:
            block = _COUNT.pack(p.count) + b"".join(p.parts)
            blocks.append((key[0], key[1], block, p.count, p.first, p.last))
            p.parts, p.size, p.count = [], 4, 0

    for i, msg in enumerate(messages):
        region = rid = None
        ingested = 0
        bad: tuple[str, str] | None = None
        for name, raw in msg.headers() or ():
            if name == "govhub-region":
                region = raw
            elif name == "govhub-record-id":
                rid = raw
            elif name == "govhub-ingested-at":
                if not (0 < len(raw) <= _INGESTED_MAX_DIGITS and raw.isdigit()):
                    bad = ("bad-header", "govhub-ingested-at is not an integer")
                    break
                ingested = int(raw)
        if bad is None and region is None:
            bad = ("missing-region", "header govhub-region is missing")
        if bad is None and not rid:
            bad = ("missing-record-id", "header govhub-record-id is missing")
        if bad is None and rid is not None:
            try:
                rid.decode("utf-8")
                if len(rid) > 0xFFFF:
                    raise ValueError
            except ValueError:
                bad = ("bad-header", "govhub-record-id is not 1..65535 bytes of UTF-8")
        if bad is not None:
            dead.append((i, bad[0], bad[1]))
            continue
        assert region is not None and rid is not None
        value = msg.value()
        if not value:
            dead.append((i, "empty-value", "record has no value"))
            continue
        if len(value) < 5 or value[0] != 0:
            detail = (
                "value shorter than the 5-byte schema-id framing"
                if len(value) < 5
                else "value does not start with the magic byte 0"
            )
            dead.append((i, "bad-framing", detail))
            continue
        schema_id = int.from_bytes(value[1:5], "big")
        topic = msg.topic()
        key = (topic, region, schema_id)
        plan = cache.get(key)
        if plan is None:
            got = resolve(topic, region, schema_id)
            if isinstance(got, BaseException):
                dead.append((i, got, None))
                continue
            plan = cache[key] = got
        stats_index, views = plan
        st = stats.setdefault(stats_index, [0, 0, -1])
        st[0] += 1
        if not views:
            st[1] += 1
            continue
        payload = value[5:]
        shaped: list[tuple[bytes, int, tuple[int, ...]]] = []
        failed = False
        for shaper, view_schema_id, slots in views:
            if shaper is None:
                shaped.append((payload, schema_id, slots))
                continue
            try:
                out = shaper(payload)
            except Exception as exc:
                dead.append((i, exc, None))
                failed = True
                break
            if out is not None:
                shaped.append((out, view_schema_id, slots))
        if failed or not shaped:
            continue
        partition, offset = msg.partition(), msg.offset()
        tb = topic.encode()
        if st[2] < 0 or ingested < st[2]:
            st[2] = ingested
        for data, view_schema_id, slots in shaped:
            entry = (
                _ENTRY.pack(
                    view_schema_id, partition, offset, ingested, len(tb), len(rid), len(data)
                )
                + tb
                + rid
                + data
            )
            size = len(entry)
            for slot in slots:
                pkey = (slot, partition)
                p = pending.get(pkey)
                if p is None:
                    p = pending[pkey] = _Pending()
                if p.count and p.size + size > max_bytes:
                    finish(pkey, p)
                p.parts.append(entry)
                p.size += size
                if not p.count:
                    p.first = offset
                p.last = offset
                p.count += 1
                if p.count >= max_entries or p.size >= max_bytes:
                    finish(pkey, p)
    for pkey, p in pending.items():
        finish(pkey, p)
    size = max(stats) + 1 if stats else 0
    stat_list: list[Stat] = [(0, 0, -1)] * size
    for index, (records_in, unrouted, oldest) in stats.items():
        stat_list[index] = (records_in, unrouted, oldest)
    return blocks, dead, stat_list


def _native() -> RouteFn | None:
    try:
        from hub.router._batch import route as native
    except ImportError:  # built without a C compiler: the Python loop, same results
        return None
    return native


route_native = _native()
NATIVE = route_native is not None
route: RouteFn = route_native if route_native is not None else route_python
