"""A subscription policy checked against the resource's catalogue entry and Avro schema."""

from __future__ import annotations

import orjson

from hub.catalogue.model import Resource
from hub.parties.model import Party
from hub.policy.views import View, ViewError, compile_view
from hub.registry.store import SchemaRegistry, SubjectNotFound
from hub.router.routing import policy_masking
from hub.subscriptions.lifecycle import LifecycleError
from hub.subscriptions.model import Policy

_PROBE_KEY = bytes(32)  # stands in for the recipient's pseudonym key while checking


def resource_schema(registry: SchemaRegistry, resource: Resource) -> str:
    """The latest writer schema of ``resource`` (409 when none is registered yet)."""
    try:
        return registry.version(resource.subject, "latest").schema
    except SubjectNotFound:
        raise LifecycleError(
            409, f"resource {resource.code} has no registered schema yet ({resource.subject})"
        ) from None


def check_policy(policy: Policy, resource: Resource, schema_json: str, subscriber: Party) -> None:
    """Raise a 400 :class:`LifecycleError` for anything the schema or catalogue cannot
    honour: unknown fields, masks that do not fit a field's type, predicates that do not
    compare with their field, releasing a field that is not personal."""
    try:
        names = set(_schema_field_names(schema_json))
    except ValueError as exc:  # pragma: no cover - schemas are validated on registration
        raise LifecycleError(
            409, f"schema of resource {resource.code} is unusable: {exc}"
        ) from None
    for label, wanted in (
        ("fields", policy.fields or ()),
        ("masking", tuple(policy.masking)),
        ("unmasked", policy.unmasked),
    ):
        unknown = sorted(set(wanted) - names)
        if unknown:
            raise LifecycleError(
                400, f"{label} names fields the schema of resource {resource.code} lacks: {unknown}"
            )
    personal = resource.personal_fields()
    not_personal = sorted(set(policy.unmasked) - set(personal))
    if not_personal:
        raise LifecycleError(
            400, f"unmasked lists fields that are not personal (nothing to release): {not_personal}"
        )
    masking = policy_masking(resource, subscriber, policy.masking, policy.unmasked)
    view = View.of(policy.fields, masking, policy.filters)
    if view.needs_pseudonym_key:
        view = View(view.fields, view.masking, view.filters, _PROBE_KEY)
    try:
        compile_view(view, schema_json)
    except ViewError as exc:
        raise LifecycleError(400, f"policy does not fit the schema: {exc}") from None


def _schema_field_names(schema_json: str) -> list[str]:
    doc = orjson.loads(schema_json)
    if not isinstance(doc, dict):
        raise ValueError("not a record schema")
    return [str(f["name"]) for f in doc.get("fields", [])]
