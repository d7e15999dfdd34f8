import datetime
import decimal

import orjson
import pytest
from pydantic import ValidationError

from hub.catalogue.samples import load_sample
from hub.policy.predicates import Op, Predicate, PredicateError, compile_predicates

SCHEMA = orjson.loads(load_sample("mzj.dibao").schema_json)
FIELDS = {f["name"]: f for f in SCHEMA["fields"]}
RECORD = {
    "id_card": "11010519491231002X",
    "name": "张三",
    "region_code": "110105001001",
    "household_size": 3,
    "amount": decimal.Decimal("1245.50"),
    "approved_on": datetime.date(2026, 3, 2),
    "category": "URBAN",
    "address": None,
}


def p(field: str, op: str, value: object = None, values: object = None) -> Predicate:
    return Predicate.model_validate({"field": field, "op": op, "value": value, "values": values})


def accepts(*predicates: Predicate, record: dict[str, object] = RECORD) -> bool:
    return compile_predicates(predicates, FIELDS)(record)


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (p("category", "eq", "URBAN"), True),
        (p("category", "ne", "URBAN"), False),
        (p("category", "in", values=["RURAL", "URBAN"]), True),
        (p("category", "not_in", values=["URBAN"]), False),
        (p("household_size", "ge", 3), True),
        (p("household_size", "gt", 3), False),
        (p("household_size", "lt", 4.5), True),
        (p("amount", "le", "1245.50"), True),
        (p("amount", "gt", 1000), True),
        (p("approved_on", "ge", "2026-03-01"), True),
        (p("approved_on", "lt", "2026-03-01"), False),
        (p("region_code", "in", values=["110105001001", "110105001002"]), True),
        (p("name", "eq", "李四"), False),
        (p("address", "eq", "x"), False),  # null satisfies nothing
        (p("address", "ne", "x"), False),
        (p("address", "not_in", values=["x"]), False),
    ],
)
def test_each_operator(predicate: Predicate, expected: bool) -> None:
    assert accepts(predicate) is expected


def test_all_predicates_must_hold() -> None:
    yes, no = p("household_size", "ge", 1), p("category", "eq", "RURAL")
    assert accepts(yes, yes, yes) and not accepts(yes, yes, no) and not accepts(yes, no)
    assert accepts()  # no predicates: every record


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        (p("nope", "eq", 1), "does not have"),
        (p("household_size", "eq", "three"), "is a number"),
        (p("household_size", "eq", True), "is a number"),
        (p("amount", "ge", "lots"), "decimal"),
        (p("approved_on", "ge", "yesterday"), "date"),
        (p("category", "eq", "SUBURBAN"), "enum"),
        (p("category", "lt", "URBAN"), "no order"),
        (p("name", "eq", 7), "string"),
    ],
)
def test_bad_predicates_fail_at_compile_time(predicate: Predicate, message: str) -> None:
    with pytest.raises(PredicateError, match=message):
        compile_predicates([predicate], FIELDS)


def test_operands_are_checked_by_the_model() -> None:
    with pytest.raises(ValidationError, match="values"):
        Predicate(field="category", op=Op.IN, value="URBAN")
    with pytest.raises(ValidationError, match="single 'value'"):
        Predicate(field="category", op=Op.EQ)
    assert p("category", "in", values=["URBAN"]).describe() == "category in ['URBAN']"
