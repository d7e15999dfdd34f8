"""Data-quality rules applied where records enter the hub.

The rules come from the catalogue entry: required fields, the region-code field (well
formed and, given a :class:`RegionDirectory`, known), personal tags (身份证号 check
character) and each field's declared :class:`~hub.catalogue.fields.FieldRules`. They are
compiled once per resource into a :class:`RecordChecker`; :func:`check_record` keeps the
compiled checkers, so a connector pays a dict lookup and the checks themselves per record.

A violation's ``reason`` is a short bounded label (metrics, DLQ headers); its ``detail``
names the field and the rule and never echoes the value of a personal-data field.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from hub.catalogue.codes import id_card_check_char, id_card_valid, mobile_valid, uscc_valid
from hub.catalogue.fields import FieldFormat, FieldRules, FieldType
from hub.catalogue.metrics import QUALITY_VIOLATIONS
from hub.catalogue.model import PersonalTag, Resource, ResourceField
from hub.policy.masking import masker
from hub.regions import InvalidRegionCode, validate_region_code

__all__ = [
    "QUALITY_REASONS",
    "QualityViolation",
    "RecordChecker",
    "check_record",
    "compile_checker",
    "id_card_check_char",
    "id_card_valid",
    "redact_personal",
]

QUALITY_REASONS = (
    "missing-field",
    "invalid-region",
    "unknown-region",
    "invalid-id-card",
    "invalid-uscc",
    "invalid-mobile",
    "pattern-mismatch",
    "too-long",
    "not-in-code-list",
    "not-a-number",
    "out-of-range",
    "invalid-date",
    "future-date",
    "date-too-early",
)

# Dates are judged on the calendar of the hub's users (China Standard Time, no DST).
CST = datetime.timezone(datetime.timedelta(hours=8), "CST")
CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class QualityViolation:
    reason: str  # short, bounded label: used in metrics and DLQ headers
    detail: str


Check = Callable[[Any], QualityViolation | None]


class RecordChecker:
    """The compiled quality rules of one resource."""

    __slots__ = ("_checks", "_counters", "_region", "_required", "resource_code")

    def __init__(self, resource: Resource) -> None:
        self.resource_code = resource.code
        self._required = tuple(f.name for f in resource.fields if f.required)
        self._region = resource.region_field
        checks = ((f.name, _field_checks(f)) for f in resource.fields)
        self._checks = tuple((name, fns) for name, fns in checks if fns)
        self._counters: dict[str, Any] = {}

    def check(
        self, record: Mapping[str, Any], regions: Container[str] | None = None
    ) -> QualityViolation | None:
        """The first rule ``record`` breaks, or None."""
        violation = self._first_violation(record, regions)
        if violation is not None:
            counter = self._counters.get(violation.reason)
            if counter is None:
                counter = QUALITY_VIOLATIONS.labels(self.resource_code, violation.reason)
                self._counters[violation.reason] = counter
            counter.inc()
        return violation

    def _first_violation(
        self, record: Mapping[str, Any], regions: Container[str] | None
    ) -> QualityViolation | None:
        get = record.get
        for name in self._required:
            value = get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                return QualityViolation("missing-field", f"required field {name!r} is empty")
        region = str(get(self._region))
        try:
            validate_region_code(region)
        except InvalidRegionCode as exc:
            return QualityViolation("invalid-region", str(exc))
        if regions is not None and region not in regions:
            return QualityViolation(
                "unknown-region",
                f"region code {region} in {self._region!r} is not in the party hierarchy "
                "or the reference list",
            )
        for name, checks in self._checks:
            value = get(name)
            if value is None or value == "":
                continue
            for check in checks:
                violation = check(value)
                if violation is not None:
                    return violation
        return None


_CHECKERS: dict[int, tuple[Resource, RecordChecker]] = {}
_CACHE_SIZE = 256


def compile_checker(resource: Resource) -> RecordChecker:
    """The compiled checker of ``resource``, built once per resource object."""
    cached = _CHECKERS.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    checker = RecordChecker(resource)
    if len(_CHECKERS) >= _CACHE_SIZE:
        _CHECKERS.clear()
    _CHECKERS[id(resource)] = (resource, checker)
    return checker


def check_record(
    resource: Resource, record: Mapping[str, Any], regions: Container[str] | None = None
) -> QualityViolation | None:
    """The first rule ``record`` breaks, or None.

    ``regions``, when given, is the set of region codes the record's region field may
    take (the party hierarchy, a reference list); without it any well-formed code passes.
    """
    return compile_checker(resource).check(record, regions)


def redact_personal(resource: Resource, record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with every personal field masked (for dead letters and logs)."""
    out = dict(record)
    for name, tag in resource.personal_fields().items():
        if name in out and out[name] is not None:
            out[name] = masker(tag.default_mask)(out[name])
    return out


# -- compiling one field's rules -----------------------------------------------------------
def _field_checks(item: ResourceField) -> tuple[Check, ...]:
    rules = item.rules
    label = f"field {item.name!r}"
    # A personal value is never repeated in a detail; other values are, shortened.
    show: Callable[[Any], str] = (
        (lambda value: "") if item.personal else (lambda value: f" (got {str(value)[:40]!r})")
    )
    checks: list[Check] = []
    if rules.max_length is not None:
        checks.append(_max_length(label, rules.max_length))
    fmt = rules.format
    if item.personal is PersonalTag.ID_CARD and fmt is None:
        fmt = FieldFormat.ID_CARD
    if fmt is not None:
        checks.append(_format(label, fmt, show))
    if rules.pattern is not None:
        checks.append(_pattern(label, rules.pattern, show))
    if rules.allowed is not None:
        checks.append(_code_list(label, rules.allowed, show))
    if rules.min is not None or rules.max is not None:
        checks.append(_range(label, rules, show))
    if rules.not_future or rules.not_before is not None:
        checks.append(_dates(label, rules, item.type, show))
    return tuple(checks)


def _max_length(label: str, limit: int) -> Check:
    def check(value: Any) -> QualityViolation | None:
        if len(str(value)) > limit:
            return QualityViolation("too-long", f"{label} is longer than {limit} characters")
        return None

    return check


_FORMATS: dict[FieldFormat, tuple[Callable[[str], bool], str, str]] = {
    FieldFormat.ID_CARD: (id_card_valid, "invalid-id-card", "fails the GB 11643 check digit"),
    FieldFormat.USCC: (
        uscc_valid,
        "invalid-uscc",
        "is not a 统一社会信用代码 (GB 32100 check character)",
    ),
    FieldFormat.MOBILE: (mobile_valid, "invalid-mobile", "is not an 11-digit mobile number"),
}


def _format(label: str, fmt: FieldFormat, show: Callable[[Any], str]) -> Check:
    if fmt is FieldFormat.REGION_CODE:

        def region(value: Any) -> QualityViolation | None:
            try:
                validate_region_code(str(value))
            except InvalidRegionCode:
                return QualityViolation(
                    "invalid-region", f"{label} is not a 12-digit region code{show(value)}"
                )
            return None

        return region
    valid, reason, what = _FORMATS[fmt]

    def check(value: Any) -> QualityViolation | None:
        if not valid(str(value)):
            return QualityViolation(reason, f"{label} {what}{show(value)}")
        return None

    return check


def _pattern(label: str, pattern: str, show: Callable[[Any], str]) -> Check:
    match = re.compile(pattern).fullmatch

    def check(value: Any) -> QualityViolation | None:
        if match(str(value)) is None:
            return QualityViolation(
                "pattern-mismatch", f"{label} does not match {pattern}{show(value)}"
            )
        return None

    return check


def _code_list(label: str, allowed: tuple[str, ...], show: Callable[[Any], str]) -> Check:
    codes = frozenset(allowed)
    listing = ", ".join(allowed[:8]) + (", ..." if len(allowed) > 8 else "")

    def check(value: Any) -> QualityViolation | None:
        if str(value) not in codes:
            return QualityViolation(
                "not-in-code-list", f"{label} is not in its code list [{listing}]{show(value)}"
            )
        return None

    return check


def _as_number(value: Any) -> Decimal | int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return value if not isinstance(value, Decimal) or value.is_finite() else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _range(label: str, rules: FieldRules, show: Callable[[Any], str]) -> Check:
    low, high = rules.min, rules.max
    bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"

    def check(value: Any) -> QualityViolation | None:
        number = _as_number(value)
        if number is None:
            return QualityViolation("not-a-number", f"{label} is not a number{show(value)}")
        if (low is not None and number < low) or (high is not None and number > high):
            return QualityViolation("out-of-range", f"{label} is outside {bounds}{show(value)}")
        return None

    return check


def as_datetime(value: Any, field_type: FieldType | None) -> datetime.datetime | None:
    """A date or timestamp value (object, ISO string, epoch days or ms) as aware datetime.

    Integers are epoch days for ``date`` fields and epoch milliseconds for timestamps;
    naive values are read as China Standard Time.
    """
    try:
        if isinstance(value, datetime.datetime):
            moment = value
        elif isinstance(value, datetime.date):
            moment = datetime.datetime.combine(value, datetime.time())
        elif isinstance(value, str):
            text = value.strip()
            moment = (
                datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time())
                if len(text) == 10
                else datetime.datetime.fromisoformat(text)
            )
        elif isinstance(value, int) and not isinstance(value, bool):
            epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
            if field_type is FieldType.TIMESTAMP:
                return epoch + datetime.timedelta(milliseconds=value)
            return (epoch + datetime.timedelta(days=value)).replace(tzinfo=CST)
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CST)


def _cst_date(moment: datetime.datetime) -> datetime.date | None:
    """The calendar day of ``moment`` in China Standard Time; None when that day is past
    the years Python represents (a moment at the edge of year 1 or 9999)."""
    try:
        return moment.astimezone(CST).date()
    except OverflowError:
        return None


def _dates(
    label: str, rules: FieldRules, field_type: FieldType | None, show: Callable[[Any], str]
) -> Check:
    not_future, not_before = rules.not_future, rules.not_before
    whole_days = field_type is not FieldType.TIMESTAMP

    def check(value: Any) -> QualityViolation | None:
        moment = as_datetime(value, field_type)
        invalid = QualityViolation("invalid-date", f"{label} is not a valid date{show(value)}")
        if moment is None:
            return invalid
        now = datetime.datetime.now(CST)
        if not_future:
            if whole_days:
                day = _cst_date(moment)
                if day is None:
                    return invalid
                late = day > now.date()
            else:
                late = moment > now + CLOCK_SKEW
            if late:
                return QualityViolation("future-date", f"{label} lies in the future{show(value)}")
        if not_before is not None:
            day = _cst_date(moment)
            if day is None:
                return invalid
            if day < not_before:
                return QualityViolation(
                    "date-too-early", f"{label} is before {not_before.isoformat()}{show(value)}"
                )
        return None

    return check
