"""Information items (信息项): value types and the data-quality rules declared per field."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FieldType(StrEnum):
    """The value type of a field, taken from its Avro schema."""

    STRING = "string"
    INT = "int"
    LONG = "long"
    FLOAT = "float"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    BYTES = "bytes"
    DECIMAL = "decimal"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    ENUM = "enum"
    FIXED = "fixed"
    RECORD = "record"
    ARRAY = "array"
    MAP = "map"
    UNION = "union"

    @property
    def numeric(self) -> bool:
        return self in _NUMERIC

    @property
    def temporal(self) -> bool:
        return self in (FieldType.DATE, FieldType.TIMESTAMP)

    @property
    def textual(self) -> bool:
        return self is FieldType.STRING


_NUMERIC = frozenset(
    {FieldType.INT, FieldType.LONG, FieldType.FLOAT, FieldType.DOUBLE, FieldType.DECIMAL}
)
_CODE_LIST_TYPES = frozenset({FieldType.STRING, FieldType.ENUM, FieldType.INT, FieldType.LONG})


class FieldFormat(StrEnum):
    """Named value formats with their own check (beyond a plain pattern)."""

    ID_CARD = "id_card"  # 公民身份号码, GB 11643 check character
    USCC = "uscc"  # 统一社会信用代码, GB 32100 check character
    MOBILE = "mobile"  # 手机号码, 11 digits 13-19
    REGION_CODE = "region_code"  # 统计用区划代码, 12 digits, levels well formed


class FieldRules(BaseModel):
    """Data-quality rules of one field; every rule is optional.

    ``min``/``max`` bound numeric values, ``allowed`` is a code list, ``pattern`` a regular
    expression the whole value must match, ``format`` a named check, ``max_length`` a
    length in characters, ``not_future``/``not_before`` bound dates and timestamps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: Decimal | None = None
    max: Decimal | None = None
    allowed: tuple[str, ...] | None = Field(default=None, description="code list (代码表)")
    pattern: str | None = None
    format: FieldFormat | None = None
    max_length: int | None = Field(default=None, ge=1)
    not_future: bool = False
    not_before: datetime.date | None = None

    @field_validator("min", "max")
    @classmethod
    def _finite(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and not v.is_finite():
            raise ValueError("must be a finite number")
        return v

    @field_validator("allowed")
    @classmethod
    def _code_list(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("a code list needs at least one value")
        if len(set(v)) != len(v):
            raise ValueError("a code list must not repeat values")
        return v

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(
                    f"pattern {v!r} is not a valid regular expression: {exc}"
                ) from None
        return v

    @model_validator(mode="after")
    def _bounds(self) -> FieldRules:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    @property
    def empty(self) -> bool:
        return self == _NO_RULES

    def type_problems(self, field_type: FieldType) -> list[str]:
        """Rules that make no sense for a field of ``field_type``."""
        problems = []
        if (self.min is not None or self.max is not None) and not field_type.numeric:
            problems.append(f"min/max need a numeric type, not {field_type.value}")
        if self.allowed is not None and field_type not in _CODE_LIST_TYPES:
            problems.append(f"a code list needs a string, enum or integer type, not {field_type}")
        textual = (self.pattern, self.format, self.max_length)
        if any(r is not None for r in textual) and not field_type.textual:
            problems.append(f"pattern/format/max_length need a string type, not {field_type}")
        dated = self.not_future or self.not_before is not None
        if dated and not (field_type.temporal or field_type.textual):
            problems.append(
                f"not_future/not_before need a date, timestamp or ISO date string, not {field_type}"
            )
        return problems


_NO_RULES = FieldRules()
