"""The materialised view of one resource: an embedded RocksDB (``rocksdict``) per node.

Layout (raw byte keys; ``\\x00`` separates parts; see ``docs/data-services.md``)::

    r\\x00<key>                                  → record entry (below)
    g\\x00<region 12><key>                       → b""   jurisdiction index
    i\\x00<field>\\x00<value>\\x00<region 12><key>  → b""   index of an indexed field
    o\\x00<partition u32>                        → next source offset (u64)
    m\\x00layout                                 → JSON: topic, layout version

A record entry is ``partition i32 | offset i64 | source time ms i64 | region (12 ASCII,
blank when unknown) | index blob length u16 | index blob | source value`` — the source
value is kept byte for byte (Confluent framing and Avro), so the view is decoded and
shaped only when a call reads it. Every change of a consumed batch, with the partitions'
next offsets, is one atomic ``WriteBatch``: after a crash the store resumes exactly where
its last batch ended. A tombstone deletes the entry and its index rows.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import orjson
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, ReadOptions, WriteBatch

LAYOUT_VERSION = 1
REGION_LEN = 12
_BLANK_REGION = b" " * REGION_LEN
_ENTRY = struct.Struct(">iqq12sH")
_OFFSET = struct.Struct(">Q")
_PARTITION = struct.Struct(">I")
_SEP = b"\x00"
_INDEX_SEP = b"\x1f"

RECORD = b"r\x00"
GEO = b"g\x00"
INDEX = b"i\x00"
OFFSETS = b"o\x00"
LAYOUT = b"m\x00layout"


class StoreError(Exception):
    """The local store cannot be opened or does not match its source."""


class StoredRecord(NamedTuple):
    """One stored entry as a read returns it (a named tuple: built on every call, and a
    frozen dataclass costs several times more to construct)."""

    key: str
    partition: int
    offset: int
    source_ms: int
    region: str
    value: bytes


def _index_value(value: object) -> bytes:
    """The bytes an indexed value is stored and looked up under (NUL-free)."""
    if value is None:
        return b""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return text.encode().replace(_SEP, b"").replace(_INDEX_SEP, b"")


def index_value(value: object) -> bytes:
    return _index_value(value)


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix``."""
    buf = bytearray(prefix)
    while buf and buf[-1] == 0xFF:
        buf.pop()
    if not buf:
        return None
    buf[-1] += 1
    return bytes(buf)


class ResourceStore:
    """One resource's records by business key, with its jurisdiction and field indexes."""

    def __init__(
        self,
        path: Path,
        topic: str,
        indexed: tuple[str, ...] = (),
        block_cache: Cache | None = None,
    ) -> None:
        self.path = path
        self.topic = topic
        self.indexed = indexed
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.increase_parallelism(2)
        options.set_max_background_jobs(2)
        options.set_write_buffer_size(64 * 1024 * 1024)
        table = BlockBasedOptions()
        # One cache for every view of a node (``data_service.block_cache_mb``): the views share
        # its memory as their traffic shares the node.
        table.set_block_cache(block_cache if block_cache is not None else Cache(64 << 20))
        table.set_bloom_filter(10, False)  # point lookups skip files without the key
        table.set_cache_index_and_filter_blocks(True)
        options.set_block_based_table_factory(table)
        try:
            self._db = Rdict(str(path), options)
        except Exception as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from exc
        layout = self._db.get(LAYOUT)
        expected = {"topic": topic, "version": LAYOUT_VERSION, "indexed": list(indexed)}
        if layout is None:
            self._db.put(LAYOUT, orjson.dumps(expected))
        elif orjson.loads(layout) != expected:
            self._db.close()
            raise StoreError(
                f"the store at {path} was built for {orjson.loads(layout)}, not {expected}: "
                "remove it (or start with data_service.rebuild_on_start = true)"
            )
        self.records = self._count_records()

    @staticmethod
    def destroy(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        self._db.close()

    def _count_records(self) -> int:
        estimate = self._db.property_int_value("rocksdb.estimate-num-keys") or 0
        if estimate > 2_000_000:
            return estimate  # an estimate beyond this size; the gauge is approximate
        return sum(1 for _ in self._iter_prefix(RECORD))

    # -- offsets ---------------------------------------------------------------------------
    def offsets(self) -> dict[int, int]:
        """Next offset to read per source partition, as last committed to the store."""
        out: dict[int, int] = {}
        for key, value in self._iter_prefix(OFFSETS, with_values=True):
            (partition,) = _PARTITION.unpack(key[len(OFFSETS) :])
            (out[partition],) = _OFFSET.unpack(value)
        return out

    # -- writes ----------------------------------------------------------------------------
    def batch(self) -> StoreBatch:
        return StoreBatch(self)

    # -- reads -----------------------------------------------------------------------------
    def get(self, key: str) -> StoredRecord | None:
        raw = self._db.get(RECORD + key.encode())
        return None if raw is None else _decode_entry(key, raw)

    def get_many(self, keys: list[str]) -> list[StoredRecord | None]:
        if not keys:
            return []
        raws: list[bytes | None] = self._db.get([RECORD + k.encode() for k in keys]) or []
        return [
            None if raw is None else _decode_entry(k, raw)
            for k, raw in zip(keys, raws, strict=True)
        ]

    def scan_region(self, prefix: str, after: bytes | None = None) -> Iterator[tuple[bytes, str]]:
        """(index key, business key) of every record whose region starts with ``prefix``,
        in index order, starting after ``after`` (a cursor from a previous page)."""
        head = GEO + prefix.encode()
        skip = len(GEO) + REGION_LEN
        for index_key, _ in self._iter_prefix(head, start=after):
            yield index_key, index_key[skip:].decode()

    def scan_field(
        self, name: str, value: object, prefix: str, after: bytes | None = None
    ) -> Iterator[tuple[bytes, str]]:
        """Like :meth:`scan_region`, for records whose indexed field ``name`` equals
        ``value``."""
        base = INDEX + name.encode() + _SEP + _index_value(value) + _SEP
        skip = len(base) + REGION_LEN
        for index_key, _ in self._iter_prefix(base + prefix.encode(), start=after):
            yield index_key, index_key[skip:].decode()

    def _iter_prefix(
        self, prefix: bytes, start: bytes | None = None, with_values: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        opts = ReadOptions()
        end = _prefix_end(prefix)
        if end is not None:
            opts.set_iterate_upper_bound(end)
        it = self._db.iter(opts)
        if start is not None and start.startswith(prefix):
            it.seek(start)
            if it.valid() and it.key() == start:
                it.next()
        else:
            it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, (it.value() if with_values else b"")
            it.next()

    def size_bytes(self) -> int:
        live = self._db.property_int_value("rocksdb.estimate-live-data-size") or 0
        memtables = self._db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        return int(live + memtables)


def _decode_entry(key: str, raw: bytes) -> StoredRecord:
    partition, offset, source_ms, region, blob_len = _ENTRY.unpack_from(raw)
    start = _ENTRY.size + blob_len
    return StoredRecord(key, partition, offset, source_ms, region.decode().strip(), raw[start:])


def _entry_index(raw: bytes) -> tuple[bytes, list[bytes]]:
    """(region, index values) of a stored entry, without its value."""
    _, _, _, region, blob_len = _ENTRY.unpack_from(raw)
    blob = raw[_ENTRY.size : _ENTRY.size + blob_len]
    return region, (blob.split(_INDEX_SEP) if blob_len else [])


class StoreBatch:
    """Changes of one consumed batch, applied atomically with the new offsets.

    Updates to the same key within one batch are resolved here (the last wins), so index
    rows of an intermediate version never reach the store.
    """

    def __init__(self, store: ResourceStore) -> None:
        self._store = store
        self._pending: dict[bytes, bytes | None] = {}
        self._offsets: dict[int, int] = {}

    def put(
        self,
        key: str,
        partition: int,
        offset: int,
        source_ms: int,
        region: str | None,
        index_values: tuple[object, ...],
        value: bytes,
    ) -> None:
        region_bytes = (region or "").encode()
        if len(region_bytes) != REGION_LEN:
            region_bytes = _BLANK_REGION
        blob = _INDEX_SEP.join(_index_value(v) for v in index_values) if index_values else b""
        entry = _ENTRY.pack(partition, offset, source_ms, region_bytes, len(blob)) + blob + value
        self._pending[key.encode()] = entry
        self.advance(partition, offset)

    def delete(self, key: str, partition: int, offset: int) -> None:
        self._pending[key.encode()] = None
        self.advance(partition, offset)

    def advance(self, partition: int, offset: int) -> None:
        """Record that ``offset`` of ``partition`` was read (also for skipped records)."""
        self._offsets[partition] = offset + 1

    def __len__(self) -> int:
        return len(self._pending)

    def commit(self) -> tuple[int, int]:
        """Write everything; returns (records put, records deleted)."""
        store = self._store
        db = store._db
        keys = list(self._pending)
        olds: list[bytes | None] = (db.get([RECORD + k for k in keys]) or []) if keys else []
        wb = WriteBatch(raw_mode=True)
        put = added = deleted = 0
        indexed = store.indexed
        for key, old in zip(keys, olds, strict=True):
            new = self._pending[key]
            if old is not None:
                region, values = _entry_index(old)
                wb.delete(GEO + region + key)
                for name, value in zip(indexed, values, strict=False):
                    wb.delete(INDEX + name.encode() + _SEP + value + _SEP + region + key)
            if new is None:
                if old is not None:
                    wb.delete(RECORD + key)
                    deleted += 1
                continue
            wb.put(RECORD + key, new)
            put += 1
            region, values = _entry_index(new)
            wb.put(GEO + region + key, b"")
            for name, value in zip(indexed, values, strict=False):
                wb.put(INDEX + name.encode() + _SEP + value + _SEP + region + key, b"")
            if old is None:
                added += 1
        for partition, offset in self._offsets.items():
            wb.put(OFFSETS + _PARTITION.pack(partition), _OFFSET.pack(offset))
        db.write(wb)
        store.records += added - deleted
        self._pending.clear()
        self._offsets.clear()
        return put, deleted
