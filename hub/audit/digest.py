"""Hashes of the audit trail: SHA-256, or SM3 for the 国密 suite.

Both come from OpenSSL through :mod:`hashlib` (C speed). A frame's *record-id digest* is the
hash of the JSON array of its record ids, sorted — JSON keeps ids containing any character
unambiguous, and sorting makes the digest independent of entry order.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Literal

import orjson

HashAlg = Literal["sha256", "sm3"]
ALGS: tuple[HashAlg, ...] = ("sha256", "sm3")

_ENTRY = struct.Struct(">i4xq8xHHI")
"""The fields read of a frame entry's 32-byte header (``hub/router/batch.py``, ``>iiqqHHI``):
view schema id, source offset, topic length, record-id length, payload length."""
_ENTRY_HEADER = 32

_Lineage = Callable[[bytes], tuple[list[str], list[list[int]], list[int]]]
_native_lineage: _Lineage | None
try:  # the router's native loop also walks entry blocks (hub/router/_batch.c)
    from hub.router._batch import lineage as _native_lineage
except ImportError:  # pragma: no cover - built without the extension
    _native_lineage = None


def hasher(alg: str) -> Callable[[bytes], str]:
    """``bytes -> hex digest`` for ``alg``; ValueError names the choices otherwise."""
    if alg == "sha256":
        return lambda data: hashlib.sha256(data).hexdigest()
    if alg == "sm3":
        try:
            hashlib.new("sm3")
        except ValueError:  # an OpenSSL without SM3 in hashlib: the `cryptography` one
            return _sm3_cryptography
        return lambda data: hashlib.new("sm3", data).hexdigest()
    raise ValueError(f"unknown audit hash {alg!r}; choose one of {list(ALGS)}")


def _sm3_cryptography(data: bytes) -> str:
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize().hex()


def record_ids_digest(record_ids: list[str], alg: str = "sha256") -> str:
    """Digest of a set of record ids: hash of the sorted ids as a JSON array."""
    return hasher(alg)(orjson.dumps(sorted(record_ids)))


class FrameLineage:
    """What the audit keeps of one frame's entries: its record ids, their digest, the
    source offsets (as ``[first, last]`` runs) and the view schema ids.

    Walks the frame's plaintext entry block once — a struct unpack and a slice per entry —
    and hashes with one C call per frame.
    """

    __slots__ = ("digest", "offsets", "record_ids", "view_schemas")

    def __init__(
        self,
        block: bytes,
        alg: str = "sha256",
        digest: Callable[[bytes], str] | None = None,
        native: bool = True,
    ) -> None:
        if native and _native_lineage is not None:
            ids, self.offsets, self.view_schemas = _native_lineage(block)
        else:
            ids, self.offsets, self.view_schemas = _lineage_python(block)
        self.record_ids = ids
        self.digest = (digest or hasher(alg))(orjson.dumps(sorted(ids)))


def _lineage_python(block: bytes) -> tuple[list[str], list[list[int]], list[int]]:
    """Record ids, offset runs and view schema ids of an entries block (the reference of
    the native ``hub.router._batch.lineage``)."""
    unpack = _ENTRY.unpack_from
    if len(block) < 4:
        raise ValueError("entries block shorter than its entry count")
    count = int.from_bytes(block[:4], "big")
    if count * _ENTRY_HEADER > len(block) - 4:
        raise ValueError(f"entries block of {len(block)} bytes cannot hold {count} entries")
    pos = 4
    ids: list[str] = []
    offsets: list[int] = []
    schemas: set[int] = set()
    for i in range(count):
        if pos + _ENTRY_HEADER > len(block):
            raise ValueError(f"entry {i} is truncated")
        schema, offset, topic_len, rid_len, data_len = unpack(block, pos)
        start = pos + _ENTRY_HEADER + topic_len
        if start + rid_len + data_len > len(block):
            raise ValueError(f"entry {i} runs past the end of the block")
        ids.append(block[start : start + rid_len].decode())
        offsets.append(offset)
        schemas.add(schema)
        pos = start + rid_len + data_len
    return ids, runs(offsets), sorted(schemas)


def runs(offsets: list[int]) -> list[list[int]]:
    """Ascending offsets as ``[first, last]`` runs: ``[1, 2, 3, 7] -> [[1, 3], [7, 7]]``."""
    if not offsets:
        return []
    out: list[list[int]] = []
    first = last = offsets[0]
    for offset in offsets[1:]:
        if offset == last + 1:
            last = offset
            continue
        out.append([first, last])
        first = last = offset
    out.append([first, last])
    return out


def expand_runs(spans: list[list[int]]) -> list[int]:
    return [o for first, last in spans for o in range(first, last + 1)]
