from pathlib import Path

from connectors.sinks.base import Cursor, DeliveredRecord
from connectors.sinks.jsonl import JsonlSink
from connectors.sources.file import JsonlFileSource


def rec(i: int) -> DeliveredRecord:
    return DeliveredRecord("dibao", "s", f"r{i}", "t", 0, i, 1, 2, {"i": i})


def test_sink_cuts_back_a_write_that_lost_its_cursor(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    assert sink.load_cursor() is None
    sink.write([rec(1), rec(2)], Cursor(3, 10, {"v": 1, "last": []}))
    # A crash after appending but before the cursor was replaced:
    sink._file.write(b'{"partial": true}\n')
    sink._file.flush()
    sink.close()
    again = JsonlSink(path)
    cursor = again.load_cursor()
    assert cursor == Cursor(3, 10, {"v": 1, "last": []})
    assert len(path.read_bytes().splitlines()) == 2
    again.write([rec(3)], Cursor(3, 11, {"v": 1, "last": []}))
    again.close()
    assert [line for line in path.read_bytes().splitlines()][-1].startswith(b'{"resource"')


async def test_file_source_resumes_and_flags_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a":1}\nnot json\n[1]\n\n{"a":2}\n{"a":3')  # last line unfinished
    source = JsonlFileSource("c", path)
    await source.connect(None)
    records = await source.read(10)
    assert [r.record_id for r in records] == [
        "c:in.jsonl:1",
        "c:in.jsonl:2",
        "c:in.jsonl:3",
        "c:in.jsonl:5",
    ]
    assert records[1].value is None and "invalid JSON" in (records[1].error or "")
    assert records[2].error == "line is not an object"
    with path.open("ab") as f:
        f.write(b"}\n")
    assert [r.value for r in await source.read(10)] == [{"a": 3}]
    await source.close()
    resumed = JsonlFileSource("c", path)
    await resumed.connect({"file": "in.jsonl", "line": 5})
    assert [r.record_id for r in await resumed.read(10)] == ["c:in.jsonl:6"]
    await resumed.close()
