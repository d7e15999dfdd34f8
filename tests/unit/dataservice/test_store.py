"""The RocksDB view: upserts, tombstones, index maintenance, offsets, reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.dataservice.store import ResourceStore, StoreError

A, B = "110105001001", "110105002001"


def store(tmp_path: Path, indexed: tuple[str, ...] = ("category",)) -> ResourceStore:
    return ResourceStore(tmp_path / "view", "govhub.src.mzj.dibao", indexed)


def test_upsert_delete_and_indexes(tmp_path: Path) -> None:
    s = store(tmp_path)
    batch = s.batch()
    batch.put("k1", 0, 5, 1000, A, ("URBAN",), b"\x00v1")
    batch.put("k2", 1, 7, 1000, B, ("RURAL",), b"\x00v2")
    assert batch.commit() == (2, 0)
    assert s.records == 2
    got = s.get("k1")
    assert got is not None and (got.partition, got.offset, got.region, got.value) == (
        0,
        5,
        A,
        b"\x00v1",
    )
    assert [k for _, k in s.scan_region("110105001")] == ["k1"]
    assert [k for _, k in s.scan_region("110105")] == ["k1", "k2"]
    assert [k for _, k in s.scan_field("category", "RURAL", "")] == ["k2"]

    # k1 moves region and category; k2 is deleted: no stale index rows stay behind.
    batch = s.batch()
    batch.put("k1", 0, 6, 2000, B, ("RURAL",), b"\x00v1b")
    batch.delete("k2", 1, 8)
    batch.delete("never-there", 1, 9)
    assert batch.commit() == (1, 1)
    assert s.records == 1
    assert s.get("k2") is None
    assert list(s.scan_region("110105001")) == []
    assert [k for _, k in s.scan_region("110105002")] == ["k1"]
    assert [k for _, k in s.scan_field("category", "RURAL", "")] == ["k1"]
    assert list(s.scan_field("category", "URBAN", "")) == []
    assert s.offsets() == {0: 7, 1: 10}


def test_last_write_in_a_batch_wins(tmp_path: Path) -> None:
    s = store(tmp_path)
    batch = s.batch()
    batch.put("k", 0, 1, 0, A, ("URBAN",), b"\x00one")
    batch.put("k", 0, 2, 0, B, ("RURAL",), b"\x00two")
    batch.commit()
    assert s.get("k").value == b"\x00two"  # type: ignore[union-attr]
    assert [k for _, k in s.scan_region("")] == ["k"]
    assert [k for _, k in s.scan_field("category", "RURAL", "")] == ["k"]


def test_pages_resume_after_the_cursor(tmp_path: Path) -> None:
    s = store(tmp_path, ())
    batch = s.batch()
    for i in range(25):
        batch.put(f"k{i:02d}", 0, i, 0, A, (), b"\x00")
    batch.commit()
    seen: list[str] = []
    cursor = None
    while True:
        page = []
        for index_key, key in s.scan_region("1101", cursor):
            page.append(key)
            cursor = index_key
            if len(page) == 10:
                break
        seen += page
        if len(page) < 10:
            break
    assert seen == [f"k{i:02d}" for i in range(25)]


def test_unknown_region_is_stored_but_in_no_jurisdiction(tmp_path: Path) -> None:
    s = store(tmp_path, ())
    batch = s.batch()
    batch.put("k", 0, 0, 0, None, (), b"\x00")
    batch.commit()
    assert s.get("k") is not None and s.get("k").region == ""  # type: ignore[union-attr]
    assert list(s.scan_region("11")) == []


def test_reopen_keeps_records_and_offsets(tmp_path: Path) -> None:
    s = store(tmp_path)
    batch = s.batch()
    batch.put("k", 2, 41, 0, A, ("URBAN",), b"\x00x")
    batch.commit()
    s.close()
    again = store(tmp_path)
    assert again.records == 1 and again.offsets() == {2: 42}
    assert again.get("k") is not None
    again.close()
    with pytest.raises(StoreError, match="remove it"):
        ResourceStore(tmp_path / "view", "govhub.src.mzj.dibao", ("name",))
