"""Console forms → the REST API's own request models.

A form is turned into the same JSON document a REST client would send and validated by
the same pydantic model (:class:`SubscriptionRequest`, :class:`ApproveRequest`,
:class:`ReasonRequest`), so the console accepts and refuses exactly what the API does;
masks and filters are parsed by the CLI's parsers (``FIELD=KIND``, ``FIELD:OP:VALUE``).
Errors come back per form field, translated (:mod:`hub.console.i18n`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from hub.apiclient import CommandError
from hub.console.i18n import Translator
from hub.subscriptions.commands import parse_filter, parse_mask
from hub.subscriptions.requests import ApproveRequest, ReasonRequest, SubscriptionRequest

M = TypeVar("M", bound=BaseModel)
MASK_PREFIX = "mask_"


class FormData(Mapping[str, str]):
    """A submitted form: single values by name, all values of repeated names."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        self._first: dict[str, str] = {}
        for name, value in self._pairs:
            self._first.setdefault(name, value)

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __iter__(self) -> Any:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def text(self, name: str) -> str:
        return self._first.get(name, "").strip()


@dataclass
class FormResult(Generic[M]):
    model: M | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _validate(model: type[M], document: dict[str, Any], t: Translator) -> FormResult[M]:
    try:
        return FormResult(model.model_validate(document))
    except ValidationError as exc:
        return FormResult(None, t.validation_errors(exc))


def _policy(
    form: FormData, all_fields: Sequence[str], errors: dict[str, str], t: Translator
) -> dict[str, Any]:
    """fields, masking, filters and unmasked from the form's inputs."""
    policy: dict[str, Any] = {}
    chosen = form.all("field")
    if "fields_present" in form and sorted(chosen) != sorted(all_fields):
        policy["fields"] = chosen
    masking: dict[str, Any] = {}
    for name in form:
        if name.startswith(MASK_PREFIX) and form.text(name):
            try:
                key, mask = parse_mask(f"{name[len(MASK_PREFIX) :]}={form.text(name)}")
            except CommandError:
                errors.setdefault("masking", t("validation.mask"))
                continue
            masking[key] = mask
    if masking:
        policy["masking"] = masking
    lines = [line.strip() for line in form.get("filters", "").splitlines() if line.strip()]
    filters = []
    for line in lines:
        try:
            filters.append(parse_filter(line))
        except CommandError:
            errors.setdefault("filters", t("validation.filter", line=line))
    if filters:
        policy["filters"] = filters
    unmasked = form.all("unmask")
    if unmasked:
        policy["unmasked"] = unmasked
    return policy


def _optional_int(form: FormData, name: str, document: dict[str, Any]) -> None:
    value = form.text(name)
    if value:
        document[name] = value  # the model parses (and refuses) it like a JSON string


def subscription_request(
    form: FormData, resource: str, all_fields: Sequence[str], t: Translator
) -> FormResult[SubscriptionRequest]:
    errors: dict[str, str] = {}
    document: dict[str, Any] = {"resource": resource, "purpose": form.text("purpose")}
    if form.text("jurisdiction"):
        document["jurisdiction"] = form.text("jurisdiction")
    if form.text("delivery"):
        document["delivery"] = form.text("delivery")
    _optional_int(form, "duration_days", document)
    document.update(_policy(form, all_fields, errors, t))
    result = _validate(SubscriptionRequest, document, t)
    return _merge(result, errors)


def approval(
    form: FormData, all_fields: Sequence[str], t: Translator
) -> FormResult[ApproveRequest]:
    errors: dict[str, str] = {}
    document: dict[str, Any] = {"policy": _policy(form, all_fields, errors, t)}
    _optional_int(form, "duration_days", document)
    return _merge(_validate(ApproveRequest, document, t), errors)


def reason(form: FormData, t: Translator) -> FormResult[ReasonRequest]:
    return _validate(ReasonRequest, {"reason": form.get("reason", "")}, t)


def _merge(result: FormResult[M], errors: dict[str, str]) -> FormResult[M]:
    if errors:
        return FormResult(None, {**result.errors, **errors})
    return result
