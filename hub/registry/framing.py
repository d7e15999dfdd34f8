"""The Confluent wire framing of source records: ``0x00 | schema id (4 B BE) | Avro``."""

from __future__ import annotations

import struct

MAGIC = 0
_HEADER = struct.Struct(">bI")
HEADER_LEN = _HEADER.size


class FramingError(ValueError):
    """Bytes that are not a Confluent-framed Avro value."""


def frame(schema_id: int, avro_payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + avro_payload


def unframe(value: bytes) -> tuple[int, memoryview]:
    """(schema id, Avro payload view) of a framed value."""
    if len(value) < HEADER_LEN:
        raise FramingError(f"value of {len(value)} bytes is shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(value)
    if magic != MAGIC:
        raise FramingError(f"unknown magic byte {magic}")
    return schema_id, memoryview(value)[HEADER_LEN:]
