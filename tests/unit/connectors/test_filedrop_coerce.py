import pytest

from connectors.sources.filedrop_coerce import (
    CoercionError,
    RowMapper,
    to_bool,
    to_date,
    to_datetime,
    to_decimal,
    to_int,
)
from connectors.sources.formats import FileFormatError, detect_encoding, xlsx_cell_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), (" 12 ", 12), ("1,234", 1234), ("３", 3), ("4.00", 4), ("-7", -7)],
)
def test_int(text: str, expected: int) -> None:
    assert to_int(text) == expected


@pytest.mark.parametrize("text", ["x", "3.5", "", "1e999999"])
def test_int_rejects(text: str) -> None:
    with pytest.raises(CoercionError, match="whole number"):
        to_int(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234.50", "1234.50"),
        ("¥12.3", "12.3"),
        ("800元", "800"),
        ("1E+2", "100"),
        ("０.５", "0.5"),
    ],
)
def test_decimal(text: str, expected: str) -> None:
    assert to_decimal(text) == expected


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity"])
def test_decimal_rejects(text: str) -> None:
    with pytest.raises(CoercionError):
        to_decimal(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02",
        "2026/1/2",
        "20260102",
        "2026.01.02",
        "2026年1月2日",
        "2026-01-02 00:00:00",
        "２０２６/１/２",
    ],
)
def test_date_forms(text: str) -> None:
    assert to_date(text) == "2026-01-02"


@pytest.mark.parametrize("text", ["2026/13/1", "2026-02-30", "02/01/2026", "yesterday", "2026"])
def test_date_rejects_with_the_expected_forms(text: str) -> None:
    with pytest.raises(CoercionError, match="date"):
        to_date(text)


def test_datetime_and_bool() -> None:
    assert to_datetime("2026/1/2 8:30") == "2026-01-02T08:30:00"
    assert to_datetime("2026-01-02T08:30:00+08:00") == "2026-01-02T08:30:00+08:00"
    assert (to_bool("是"), to_bool("否"), to_bool("TRUE"), to_bool("0")) == (
        True,
        False,
        True,
        False,
    )
    with pytest.raises(CoercionError):
        to_bool("maybe")


def test_mapper_renames_keeps_only_mapped_columns_and_names_the_bad_cell() -> None:
    mapper = RowMapper({"身份证号": "id_card", "人数": "household_size"}, {"household_size": "int"})
    mapper.bind(["序号", "身份证号", "联系电话", "人数"])
    assert mapper.map_cells(["1", "110", "13800000000", "3"]) == {
        "id_card": "110",
        "household_size": 3,
    }
    assert mapper.map_cells(["1", None, None, None]) == {"id_card": None, "household_size": None}
    with pytest.raises(CoercionError, match=r"column '人数' \(household_size\): 'x'"):
        mapper.map_cells(["1", "110", "", "x"])
    with pytest.raises(FileFormatError, match="lacks column"):
        mapper.bind(["身份证号"])


def test_mapper_remembers_conversions_but_never_a_failure() -> None:
    mapper = RowMapper({}, {"d": "date", "n": "int"})
    mapper.bind(["d", "n"])
    rows = [["2026/1/2", "3"], ["2026年1月2日", "3"], ["2026/1/2", "４"]] * 3000
    converted = [mapper.map_cells(r) for r in rows]
    assert converted == [{"d": "2026-01-02", "n": 4 if r[1] == "４" else 3} for r in rows]
    for _ in range(2):  # a bad cell fails every time, also after good ones
        with pytest.raises(CoercionError, match="'2026/13/1' is not a valid date"):
            mapper.map_cells(["2026/13/1", "3"])
    # Past its bound the memory starts again; the answers stay the same.
    many = [[f"2026/1/{1 + i % 28}", str(i)] for i in range(10_000)]
    assert [mapper.map_cells(r)["n"] for r in many] == list(range(10_000))
    assert mapper.map_cells(["2026/1/2", "7"]) == {"d": "2026-01-02", "n": 7}


def test_mapper_on_json_objects_converts_only_text() -> None:
    mapper = RowMapper({}, {"n": "int", "d": "date"})
    assert mapper.map_object({"n": 3, "d": "2026/1/2", "x": None}) == {
        "n": 3,
        "d": "2026-01-02",
        "x": None,
    }
    with pytest.raises(CoercionError, match="field 'd'"):
        mapper.map_object({"d": "soon"})


def test_encoding_detection() -> None:
    text = "身份证号,姓名\n"
    assert detect_encoding(text.encode("utf-8")) == ("utf-8", 0)
    assert detect_encoding(b"\xef\xbb\xbf" + text.encode("utf-8")) == ("utf-8", 3)
    assert detect_encoding(text.encode("gbk")) == ("gb18030", 0)
    # A block cut inside a multi-byte character is still UTF-8.
    assert detect_encoding(text.encode("utf-8")[:4]) == ("utf-8", 0)
    with pytest.raises(FileFormatError, match="UTF-16"):
        detect_encoding(text.encode("utf-16"))


def test_spreadsheet_cells_read_as_people_see_them() -> None:
    import datetime

    assert xlsx_cell_text(3.0) == "3"
    assert xlsx_cell_text(1234.5) == "1234.5"
    assert xlsx_cell_text(datetime.datetime(2026, 1, 2)) == "2026-01-02"
    assert xlsx_cell_text(" a ") == "a"
    assert xlsx_cell_text("  ") is None
    with pytest.raises(ValueError, match="store the column as text"):
        xlsx_cell_text(110105194001010011.0)
