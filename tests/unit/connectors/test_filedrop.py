"""The file-drop source on plain files: formats, mapping, resume, done/ and failed/."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from connectors.base import SourceRecord
from connectors.sources.filedrop import FileDropConfig, FileDropSource

COLUMNS = {
    "身份证号": "id_card",
    "姓名": "name",
    "保障人数": "household_size",
    "救助金额": "amount",
    "核定日期": "approved_on",
}
TYPES: dict[str, Any] = {"household_size": "int", "amount": "decimal", "approved_on": "date"}
HEADER = "序号,身份证号,姓名,联系电话,保障人数,救助金额,核定日期\n"


def csv_rows(n: int, start: int = 1) -> str:
    return "".join(
        f"{i},11010519400101{i:04d},张{i},138{i:08d},{i % 5 + 1},"
        f'"1,2{i % 10}0.50",2026/1/{i % 28 + 1}\n'
        for i in range(start, start + n)
    )


def drop(folder: Path, name: str, data: bytes, age_s: float = 10.0) -> Path:
    path = folder / name
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def source(folder: Path, **settings: Any) -> FileDropSource:
    config = {"folder": folder, "columns": COLUMNS, "types": TYPES, "settle_s": 1.0} | settings
    return FileDropSource("c", FileDropConfig.model_validate(config))


async def drain(src: FileDropSource, batch: int = 1000) -> list[SourceRecord]:
    out: list[SourceRecord] = []
    while records := await src.read(batch):
        out.extend(records)
        await src.ack(records)
    return out


async def test_gbk_csv_mapped_typed_and_moved_to_done_after_ack(tmp_path: Path) -> None:
    data = drop(tmp_path, "低保名册.csv", (HEADER + csv_rows(3)).encode("gbk"))
    src = source(tmp_path)
    await src.connect(None)
    records = await src.read(10)
    assert [r.record_id for r in records] == [f"c:低保名册.csv:{n}" for n in (2, 3, 4)]
    assert records[0].value == {
        "id_card": "110105194001010001",
        "name": "张1",
        "household_size": 2,
        "amount": "1210.50",
        "approved_on": "2026-01-02",
    }
    assert records[-1].position["row"] == 4 and records[-1].position["file"] == "低保名册.csv"
    assert await src.read(10) == []  # end of file, but not acknowledged yet
    assert data.exists()
    await src.ack(records)
    assert await src.read(10) == []
    assert not data.exists() and (tmp_path / "done" / "低保名册.csv").exists()
    await src.close()
    await src.close()  # idempotent


async def test_utf8_bom_jsonl_and_files_in_age_order(tmp_path: Path) -> None:
    drop(tmp_path, "b.csv", b"\xef\xbb\xbf" + (HEADER + csv_rows(2)).encode(), age_s=5)
    drop(
        tmp_path,
        "a.jsonl",
        '{"身份证号": "110105194001010001", "保障人数": "3", "x": 1}\n[1]\n'.encode(),
        age_s=20,
    )
    drop(tmp_path, "fresh.csv", (HEADER + csv_rows(1)).encode(), age_s=0)  # still settling
    src = source(tmp_path)
    await src.connect(None)
    first = await src.read(10)  # a batch never spans two files
    assert [r.record_id for r in first] == ["c:a.jsonl:1", "c:a.jsonl:2"]
    assert first[0].value == {"id_card": "110105194001010001", "household_size": 3}
    assert first[1].value is None and first[1].error == "line 2 is not an object"
    await src.ack(first)
    second = await drain(src)
    assert [r.record_id for r in second] == ["c:b.csv:2", "c:b.csv:3"]
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["a.jsonl", "b.csv"]
    assert (tmp_path / "fresh.csv").exists()
    await src.close()


async def test_bad_rows_become_error_records_not_failures(tmp_path: Path) -> None:
    body = HEADER + csv_rows(1) + "2,110105194001010002,李,1,x,1,2026/1/2\n"
    body += (
        '3,110105194001010003,"王\n二",1,1,1,2026/13/40\n' + "4,1,2,3,4,5,6,7,8\n" + csv_rows(1, 5)
    )
    drop(tmp_path, "mixed.csv", body.encode())
    src = source(tmp_path)
    await src.connect(None)
    records = await drain(src)
    errors = {r.record_id: r.error for r in records if r.value is None}
    assert errors == {
        "c:mixed.csv:3": "row 3: column '保障人数' (household_size): 'x' is not a whole number",
        "c:mixed.csv:4": (
            "row 4: column '核定日期' (approved_on): '2026/13/40' is not a valid date: "
            "month must be in 1..12"
        ),
        "c:mixed.csv:5": "row 5 has 9 cells, the header 7",
    }
    assert [r.record_id for r in records if r.value is not None] == [
        "c:mixed.csv:2",
        "c:mixed.csv:6",
    ]
    await src.close()


async def test_undecodable_row_in_an_otherwise_utf8_file(tmp_path: Path) -> None:
    body = (HEADER + csv_rows(1)).encode() + "2,x,李,1,1,1,2026/1/2\n".encode("gbk")
    drop(tmp_path, "a.csv", body + csv_rows(1, 3).encode())
    src = source(tmp_path, encoding="utf-8")
    await src.connect(None)
    records = await drain(src)
    assert [r.error for r in records] == [None, "row 3: not valid utf-8 text", None]
    await src.close()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("cols.csv", "身份证号,姓名\n1,2\n".encode(), "the header lacks column(s) 保障人数"),
        ("old.xls", b"\xd0\xcf\x11\xe0", "Excel 97-2003"),
        ("wide.csv", "身份证号".encode("utf-16"), "UTF-16"),
        ("broken.xlsx", b"PK\x03\x04 not a zip", "not a readable XLSX workbook"),
    ],
)
async def test_unreadable_files_go_to_failed_with_a_reason(
    tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    if name.endswith(".xlsx"):
        pytest.importorskip("openpyxl")
    drop(tmp_path, name, data)
    drop(tmp_path, "good.csv", (HEADER + csv_rows(1)).encode(), age_s=1.5)
    src = source(tmp_path)
    await src.connect(None)
    records = await drain(src)
    assert [r.record_id for r in records] == ["c:good.csv:2"]
    assert (tmp_path / "failed" / name).exists()
    assert reason in (tmp_path / "failed" / f"{name}.reason.txt").read_text()
    await src.close()


async def test_resume_after_a_crash_continues_at_the_row_after_the_last_ack(
    tmp_path: Path,
) -> None:
    drop(tmp_path, "a.csv", (HEADER + csv_rows(10)).encode("gbk"))
    src = source(tmp_path)
    await src.connect(None)
    acked = await src.read(4)
    await src.ack(acked)
    lost = await src.read(4)  # read but never acknowledged: the crash
    assert lost
    lag = src.lag()
    assert lag is not None and 0 < lag < (tmp_path / "a.csv").stat().st_size
    again = source(tmp_path)
    await again.connect(acked[-1].position)
    rest = await drain(again)
    assert [r.position["row"] for r in rest] == list(range(6, 12))
    assert rest[0].record_id == lost[0].record_id  # the replay carries the same ids
    assert again.lag() == 0
    await again.close()


async def test_a_replaced_file_of_the_same_name_starts_over(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", (HEADER + csv_rows(5)).encode())
    src = source(tmp_path)
    await src.connect(None)
    checkpoint = (await src.read(3))[-1].position
    await src.close()
    drop(tmp_path, "a.csv", (HEADER + csv_rows(5, 100)).encode())
    again = source(tmp_path)
    await again.connect(checkpoint)
    assert [r.position["row"] for r in await drain(again)] == [2, 3, 4, 5, 6]
    await again.close()


async def test_checkpointed_file_is_finished_before_older_newcomers(tmp_path: Path) -> None:
    drop(tmp_path, "b.csv", (HEADER + csv_rows(4)).encode(), age_s=5)
    src = source(tmp_path)
    await src.connect(None)
    checkpoint = (await src.read(2))[-1].position
    await src.close()
    drop(tmp_path, "a.csv", (HEADER + csv_rows(1)).encode(), age_s=50)  # older mtime
    again = source(tmp_path)
    await again.connect(checkpoint)
    ids = [r.record_id for r in await drain(again)]
    assert ids == ["c:b.csv:4", "c:b.csv:5", "c:a.csv:2"]
    await again.close()


async def test_xlsx_with_a_title_row_numbers_and_dates(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    import datetime

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["朝阳区低保名册"])
    sheet.append(["身份证号", "姓名", "保障人数", "救助金额", "核定日期"])
    sheet.append(["110105194001010011", "张三", 3, 1234.5, datetime.datetime(2026, 1, 2)])
    sheet.append([])
    sheet.append([110105194001010012, "李四", 2, 800, "2026/3/4"])
    sheet.append(["110105194001010013", "王五", "两", 1, "2026/3/4"])
    book.save(tmp_path / "名册.xlsx")
    os.utime(tmp_path / "名册.xlsx", (time.time() - 10, time.time() - 10))
    src = source(tmp_path, header_row=2)
    await src.connect(None)
    records = await drain(src, batch=2)
    assert [r.record_id for r in records] == ["c:名册.xlsx:3", "c:名册.xlsx:5", "c:名册.xlsx:6"]
    assert records[0].value == {
        "id_card": "110105194001010011",
        "name": "张三",
        "household_size": 3,
        "amount": "1234.5",
        "approved_on": "2026-01-02",
    }
    assert "store the column as text" in (records[1].error or "")
    assert "'两' is not a whole number" in (records[2].error or "")
    assert (tmp_path / "done" / "名册.xlsx").exists()
    await src.close()


async def test_xlsx_resumes_by_row(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["身份证号", "姓名", "保障人数", "救助金额", "核定日期"])
    for i in range(10):
        sheet.append([f"id{i}", f"n{i}", i, 1, "2026-01-01"])
    book.save(tmp_path / "a.xlsx")
    os.utime(tmp_path / "a.xlsx", (time.time() - 10, time.time() - 10))
    src = source(tmp_path)
    await src.connect(None)
    checkpoint = (await src.read(4))[-1].position
    await src.close()
    again = source(tmp_path)
    await again.connect(checkpoint)
    assert [r.value["household_size"] for r in await drain(again) if r.value] == list(range(4, 10))
    await again.close()


async def test_a_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    rows = csv_rows(2000)
    path = tmp_path / "big.csv"
    with path.open("wb") as f:
        f.write(HEADER.encode("gbk"))
        # 200,000 rows, ~13 MB: large against the source's fixed-size conversion caches.
        for _ in range(100):
            f.write(rows.encode("gbk"))
    os.utime(path, (time.time() - 10, time.time() - 10))
    size = path.stat().st_size
    src = source(tmp_path)
    await src.connect(None)
    tracemalloc.start()
    count = 0
    try:
        while records := await src.read(1000):
            count += len(records)
            await src.ack(records)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await src.close()
    assert count == 200_000
    assert peak < size / 3, f"peak {peak} bytes for a {size}-byte file"


async def test_an_overlong_line_is_one_bad_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connectors.sources.formats.MAX_LINE_BYTES", 100)
    body = HEADER + csv_rows(1) + "2," + "x" * 200 + "\n" + csv_rows(1, 3)
    drop(tmp_path, "a.csv", body.encode())
    src = source(tmp_path)
    await src.connect(None)
    records = await drain(src)
    assert [bool(r.error) for r in records] == [False, True, False]
    assert "row 3: a line is longer than" in (records[1].error or "")
    await src.close()


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mapped from more than one column"):
        FileDropConfig.model_validate({"folder": tmp_path, "columns": {"a": "x", "b": "x"}})
    with pytest.raises(ValueError, match=r"\['y'\] are not fields"):
        FileDropConfig.model_validate(
            {"folder": tmp_path, "columns": {"a": "x"}, "types": {"y": "int"}}
        )
    with pytest.raises(ValueError, match=r"types\.x"):
        FileDropConfig.model_validate({"folder": tmp_path, "types": {"x": "integer"}})


async def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    from hub.config import ConfigError

    with pytest.raises(ConfigError, match=r"source\.folder"):
        await source(tmp_path / "nope").connect(None)
