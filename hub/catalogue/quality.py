"""Data-quality rules applied where records enter the hub."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.catalogue.model import PersonalTag, Resource
from hub.policy.masking import masker
from hub.regions import InvalidRegionCode, validate_region_code

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_card_valid(value: str) -> bool:
    """GB 11643 citizen identity number: 17 digits and a mod 11-2 check character."""
    if len(value) != 18 or not value[:17].isascii() or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def id_card_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


@dataclass(frozen=True, slots=True)
class QualityViolation:
    reason: str  # short, bounded label: used in metrics and DLQ headers
    detail: str


def check_record(resource: Resource, record: Mapping[str, Any]) -> QualityViolation | None:
    """The first rule ``record`` breaks, or None."""
    for f in resource.fields:
        if f.required and record.get(f.name) in (None, ""):
            return QualityViolation("missing-field", f"required field {f.name!r} is empty")
    region = record.get(resource.region_field)
    try:
        validate_region_code(str(region))
    except InvalidRegionCode as exc:
        return QualityViolation("invalid-region", str(exc))
    for f in resource.fields:
        value = record.get(f.name)
        if f.personal is PersonalTag.ID_CARD and value and not id_card_valid(str(value)):
            return QualityViolation(
                "invalid-id-card", f"field {f.name!r} fails the GB 11643 check digit"
            )
    return None


def redact_personal(resource: Resource, record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with every personal field masked (for dead letters and logs)."""
    out = dict(record)
    for name, tag in resource.personal_fields().items():
        if name in out and out[name] is not None:
            out[name] = masker(tag.default_mask)(out[name])
    return out
