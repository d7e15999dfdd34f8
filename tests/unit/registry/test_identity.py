from __future__ import annotations

import orjson
import pytest

from hub.registry.errors import InvalidSchema, SchemaError
from hub.registry.identity import identify

RECORD = {
    "type": "record",
    "name": "Person",
    "namespace": "gov.mzj",
    "fields": [{"name": "id", "type": "string"}, {"name": "age", "type": "int", "default": 0}],
}


def text(schema: object, **dumps: int) -> str:
    return orjson.dumps(schema, **dumps).decode()


def test_layout_and_key_order_do_not_change_the_id() -> None:
    shuffled = {
        "fields": [{"type": "string", "name": "id"}, {"default": 0, "name": "age", "type": "int"}],
        "namespace": "gov.mzj",
        "name": "Person",
        "type": "record",
    }
    a = identify(text(RECORD))
    b = identify(text(shuffled, option=orjson.OPT_INDENT_2))
    assert a == b
    assert 0 < a.schema_id < 2**31
    assert a.form.startswith('{"type":"record","name":"Person","namespace":"gov.mzj"')


def test_full_name_and_namespace_spellings_are_one_schema() -> None:
    full = dict(RECORD, name="gov.mzj.Person")
    del full["namespace"]
    assert identify(text(full)) == identify(text(RECORD))


@pytest.mark.parametrize(
    "change",
    [
        {"doc": "people"},
        {"fields": [{"name": "id", "type": "string"}, {"name": "age", "type": "int"}]},
        {"fields": [{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}]},
    ],
    ids=["doc", "default", "logical-type"],
)
def test_what_readers_see_is_part_of_the_identity(change: dict[str, object]) -> None:
    assert identify(text(dict(RECORD, **change))).schema_id != identify(text(RECORD)).schema_id


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "42",
        '"Unknown"',
        '{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}',
        '{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}',
        '{"type":"record","fields":[]}',
        '{"type":"enum","name":"E","symbols":["A","A"]}',
        '{"type":"bytes","logicalType":"decimal","precision":-1}',
    ],
)
def test_invalid_schemas_are_typed_errors(bad: str) -> None:
    with pytest.raises(InvalidSchema) as info:
        identify(bad)
    assert isinstance(info.value, SchemaError)  # what the router catches
    assert info.value.code == 42201
