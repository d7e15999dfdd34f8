import pytest

from hub.subscriptions.commands import CommandError, parse_filter, parse_mask


def test_masks_from_the_command_line() -> None:
    assert parse_mask("name=name") == ("name", "name")
    assert parse_mask("phone=keep:3:4") == ("phone", {"kind": "keep", "first": 3, "last": 4})
    for bad in ("name", "=name", "phone=keep:3", "phone=keep:a:b"):
        with pytest.raises(CommandError, match="--mask"):
            parse_mask(bad)


def test_filters_from_the_command_line() -> None:
    assert parse_filter("category:eq:URBAN") == {"field": "category", "op": "eq", "value": "URBAN"}
    assert parse_filter("household_size:ge:3") == {
        "field": "household_size",
        "op": "ge",
        "value": 3,
    }
    assert parse_filter("approved_on:lt:2026-03-01")["value"] == "2026-03-01"
    assert parse_filter("category:in:URBAN,RURAL") == {
        "field": "category",
        "op": "in",
        "values": ["URBAN", "RURAL"],
    }
    with pytest.raises(CommandError, match="FIELD:OP:VALUE"):
        parse_filter("category=URBAN")
