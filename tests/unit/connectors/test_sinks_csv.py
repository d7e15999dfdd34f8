import csv
import datetime
import io
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.sinks.base import Cursor, DeliveredRecord
from connectors.sinks.csv import CsvSink, CsvSinkConfig, cell
from connectors.sinks.state import SinkStateError

SEQ = {"v": 1, "last": []}


def rec(i: int, **data: object) -> DeliveredRecord:
    fields = {"id_card": f"11010519491231002{i % 10}", "name": f"张{i}", "amount": Decimal("1.50")}
    fields.update(data)
    return DeliveredRecord("dibao", "s", f"r{i}", "t", 0, i, 1_000, 2_000, fields)


def rows(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode(encoding))))


def test_a_write_that_lost_its_cursor_is_cut_off_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = CsvSink(CsvSinkConfig(path=path))
    assert sink.load_cursor() is None
    sink.write([rec(1), rec(2)], Cursor(0, 3, SEQ))
    # Crash: rows appended, cursor never replaced.
    sink._file.write(b"r9,half a row")
    sink._file.flush()
    sink.close()
    again = CsvSink(CsvSinkConfig(path=path))
    assert again.load_cursor() == Cursor(0, 3, SEQ)
    again.write([rec(3)], Cursor(0, 4, SEQ))
    again.close()
    table = rows(path)
    assert table[0] == ["id_card", "name", "amount", "_record_id", "_source", "_ingested_at"]
    assert [r[3] for r in table[1:]] == ["r1", "r2", "r3"]
    assert table[1][2] == "1.50" and table[1][4] == "t/0/1"


def test_a_crash_before_the_first_cursor_rewrites_the_header_once(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = CsvSink(CsvSinkConfig(path=path))
    sink._file.write(b"id_card,name\r\n")  # header written, then the process died
    sink.close()
    again = CsvSink(CsvSinkConfig(path=path, lineage=False))
    again.write([rec(1)], Cursor(0, 2, SEQ))
    again.close()
    assert rows(path) == [["id_card", "name", "amount"], ["110105194912310021", "张1", "1.50"]]


def test_gbk_output_with_titles_keeps_characters_gbk_lacks(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    config = CsvSinkConfig(
        path=path, encoding="gbk", titles={"name": "姓名"}, columns=("name",), lineage=False
    )
    sink = CsvSink(config)
    sink.write([rec(1, name="王䶮"), rec(2)], Cursor(0, 3, SEQ))
    sink.close()
    assert rows(path, "gbk") == [["姓名"], ["王&#19886;"], ["张2"]]
    assert sink.replaced_characters == 1


def test_utf8_sig_puts_one_bom_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = CsvSink(CsvSinkConfig(path=path, encoding="utf-8-sig", lineage=False))
    sink.write([rec(1)], Cursor(0, 2, SEQ))
    sink.write([rec(2)], Cursor(0, 3, SEQ))
    sink.close()
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\xef\xbb\xbf") == 1


def test_new_fields_move_the_old_file_aside_and_widen_the_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = CsvSink(CsvSinkConfig(path=path, lineage=False))
    sink.write([rec(1)], Cursor(0, 2, SEQ))
    sink.write([rec(2, address="北京")], Cursor(0, 3, SEQ))
    sink.close()
    moved = [p for p in tmp_path.glob("out.*.csv")]
    assert len(moved) == 1 and len(rows(moved[0])) == 2
    assert rows(path)[0] == ["id_card", "name", "amount", "address"]
    assert rows(path)[1][3] == "北京"
    # Restarted, the sink keeps the widened header and appends.
    again = CsvSink(CsvSinkConfig(path=path, lineage=False))
    again.write([rec(3, address="x")], Cursor(0, 4, SEQ))
    again.close()
    assert len(rows(path)) == 3


def test_a_shortened_file_is_refused_not_papered_over(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = CsvSink(CsvSinkConfig(path=path))
    sink.write([rec(1), rec(2)], Cursor(0, 3, SEQ))
    sink.close()
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(SinkStateError, match="cut or replaced"):
        CsvSink(CsvSinkConfig(path=path))
    path.unlink()  # moved away by the operator: a fresh file starts
    fresh = CsvSink(CsvSinkConfig(path=path))
    fresh.write([rec(3)], Cursor(0, 4, SEQ))
    fresh.close()
    assert len(rows(path)) == 2


def test_cells_for_excel() -> None:
    assert cell("110105194912310021", excel=True) == '="110105194912310021"'
    assert cell("11010519491231002X", excel=True) == '="11010519491231002X"'
    assert cell("=HYPERLINK(1)", excel=True) == "'=HYPERLINK(1)"
    assert cell(Decimal("-1.5"), excel=True) == "-1.5"
    assert cell("=1") == "=1"
    assert cell(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert cell(None) == "" and cell(True) == "true" and cell({"a": 1}) == '{"a":1}'
