"""What a caller may get from a resource: its subscription's grant, compiled once.

A call names a resource and, optionally, one of the caller's subscriptions. The grant is
the router's own policy (:func:`hub.router.routing.subscription_view`: projection, default
and subscription masks, predicates, pseudonyms) plus the subscription's jurisdiction, its
purpose and rate limit. Grants are cached per control-state generation, so a revoked,
suspended or expired subscription is refused as soon as this node has read the change
(the control tables tail their topics every 50 ms) or its clock passes the expiry.

Rebuilding the book after a change (every subscription, party and resource, the pseudonym
keys unwrapped through the KMS) grows with the control state; :meth:`AccessBook.synced`
runs it on an executor thread, so the event loop keeps answering other calls meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hub.catalogue.model import Resource, ShareMethod
from hub.crypto.errors import CryptoError
from hub.crypto.kms import Kms
from hub.dataservice.materialise import serves
from hub.parties.model import Party
from hub.policy.masking import PseudonymKeys
from hub.policy.predicates import PredicateError, field_converter
from hub.policy.views import CompiledView, View, ViewError, compile_view
from hub.regions import Jurisdiction, jurisdiction_prefix
from hub.router.routing import subscription_view
from hub.state import ControlState
from hub.subscriptions.model import Subscription, SubscriptionStatus, now_ms
from hub.subscriptions.pseudonyms import load_pseudonym_keys

_MAX_COMPILED = 4096


class AccessDenied(Exception):
    """The call is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Grant:
    """One subscription's right to call one resource, valid until ``valid_until_ms``."""

    subscription: Subscription
    resource: Resource
    view: View
    jurisdiction: str
    """Region-code prefix the caller may see (its subscription's jurisdiction)."""
    valid_until_ms: int | None
    policy_version: str
    _compiled: dict[int, CompiledView] = field(default_factory=dict, compare=False)
    _writer_fields: dict[int, dict[str, Any]] = field(default_factory=dict, compare=False)
    _converters: dict[tuple[int, str], Any] = field(default_factory=dict, compare=False)

    def sees_region(self, region: str) -> bool:
        return bool(region) and region.startswith(self.jurisdiction)

    def may_read_field(self, name: str) -> bool:
        return self.view.fields is None or name in self.view.fields


@dataclass(frozen=True, slots=True)
class _Book:
    """The control state of one generation, as the grants need it. Replaced whole on a
    change, so a call reads one consistent generation even while the next is built."""

    generation: int
    by_caller: dict[tuple[str, str], list[Subscription]]
    parties: dict[str, Party]
    resources: dict[str, Resource]
    pseudonyms: PseudonymKeys | None
    grants: dict[tuple[str, str, str | None], Grant] = field(default_factory=dict)


_EMPTY = _Book(-1, {}, {}, {}, None)


class AccessBook:
    """Grants by (party, resource, subscription), recomputed when the control state
    changes; compiled views by (view, writer schema id)."""

    def __init__(self, state: ControlState, kms: Kms | None = None) -> None:
        self._state = state
        self._kms = kms
        self._lock = threading.Lock()
        self._book = _EMPTY
        self._compiled: dict[tuple[View, int], CompiledView] = {}
        self._syncing: asyncio.Future[_Book] | None = None

    async def synced(self) -> None:
        """Bring the book up to the control state's generation without blocking the event
        loop: the rebuild runs on an executor thread, and concurrent calls wait for the
        same rebuild. A call that starts after a change therefore sees it, as before."""
        if self._state.generation == self._book.generation:
            return
        pending = self._syncing
        if pending is None or pending.done():
            pending = asyncio.get_running_loop().run_in_executor(None, self._sync)
            self._syncing = pending
        await asyncio.shield(pending)

    def _sync(self) -> _Book:
        book = self._book
        generation = self._state.generation
        if generation == book.generation:
            return book
        with self._lock:
            book = self._book
            if generation == book.generation:
                return book
            by_caller: dict[tuple[str, str], list[Subscription]] = {}
            for sub in self._state.subscription_list():
                if sub.delivery is ShareMethod.SERVICE:
                    by_caller.setdefault((sub.subscriber, sub.resource), []).append(sub)
            try:
                pseudonyms = (
                    None if self._kms is None else load_pseudonym_keys(self._state.keys, self._kms)
                )
            except CryptoError:
                pseudonyms = None  # pseudonym fields are then redacted, never clear
            book = _Book(
                generation,
                by_caller,
                self._state.party_map(),
                self._state.resources(),
                pseudonyms,
            )
            self._book = book
            return book

    def resource(self, code: str) -> Resource:
        return _served(self._sync(), code)

    def grant(
        self,
        party: Party,
        resource_code: str,
        subscription: str | None,
        purpose: str | None,
        *,
        sync: bool = True,
    ) -> Grant:
        """The grant for this call, or :class:`AccessDenied` with the reason.

        ``sync=False`` when the caller has just awaited :meth:`synced` (the API does):
        the book is then not rebuilt here, on the event loop."""
        book = self._sync() if sync else self._book
        at = now_ms()
        key = (party.id, resource_code, subscription)
        cached = book.grants.get(key)
        if cached is None or (cached.valid_until_ms is not None and at >= cached.valid_until_ms):
            cached = _compute(book, party, resource_code, subscription, at)
            book.grants[key] = cached
        if purpose is not None and purpose != cached.subscription.purpose:
            raise AccessDenied(
                403,
                f"subscription {cached.subscription.id} was granted for the purpose "
                f"{cached.subscription.purpose!r}, not {purpose!r}",
                "purpose",
            )
        return cached

    # -- compiled policy per writer schema ---------------------------------------------------
    def compiled(self, grant: Grant, schema_id: int) -> CompiledView:
        found = grant._compiled.get(schema_id)
        if found is not None:
            return found
        key = (grant.view, schema_id)
        found = self._compiled.get(key)
        if found is None:
            schema_json = self._state.registry.schema(schema_id)
            found = compile_view(grant.view, schema_json)
            if len(self._compiled) >= _MAX_COMPILED:
                self._compiled.clear()
            self._compiled[key] = found
        grant._compiled[schema_id] = found
        return found

    def writer_fields(self, grant: Grant, schema_id: int) -> dict[str, Any]:
        found = grant._writer_fields.get(schema_id)
        if found is None:
            writer = orjson.loads(self._state.registry.schema(schema_id))
            found = {f["name"]: f for f in writer.get("fields", [])}
            grant._writer_fields[schema_id] = found
        return found


def _served(book: _Book, code: str) -> Resource:
    resource = book.resources.get(code)
    if resource is None or not serves(resource):
        raise AccessDenied(404, f"resource {code} is not offered as a data service", "unknown")
    return resource


def _compute(
    book: _Book, party: Party, resource_code: str, subscription: str | None, at: int
) -> Grant:
    resource = _served(book, resource_code)
    candidates = book.by_caller.get((party.id, resource_code), [])
    if subscription is not None:
        candidates = [s for s in candidates if s.id == subscription]
        if not candidates:
            raise AccessDenied(
                403,
                f"subscription {subscription} is not a service subscription of party "
                f"{party.id} on {resource_code}",
                "no-subscription",
            )
    active = [s for s in candidates if s.is_active(at)]
    if not active:
        reason, message = (
            "no-subscription",
            (f"party {party.id} holds no active service subscription on {resource_code}"),
        )
        for s in candidates:
            status = s.effective_status(at)
            if status in (
                SubscriptionStatus.REVOKED,
                SubscriptionStatus.SUSPENDED,
                SubscriptionStatus.EXPIRED,
            ):
                reason, message = status.value, f"subscription {s.id} is {status.value}"
                break
        raise AccessDenied(403, message, reason)
    if len(active) > 1:
        names = ", ".join(sorted(s.id for s in active))
        raise AccessDenied(
            400,
            f"party {party.id} holds several subscriptions ({names}): name one",
            "ambiguous",
        )
    (sub,) = active
    view = subscription_view(resource, sub, book.parties, at, book.pseudonyms)
    if view is None:
        raise AccessDenied(
            403, f"subscription {sub.id} grants nothing on {resource_code}", "no-grant"
        )
    return Grant(
        subscription=sub,
        resource=resource,
        view=view,
        jurisdiction=Jurisdiction.of(sub.jurisdiction).prefix,
        valid_until_ms=sub.next_change_ms(at),
        policy_version=f"{sub.id}@{sub.version}",
    )


def narrow(grant: Grant, region: str | None) -> str:
    """The listing prefix: the grant's jurisdiction, or a region inside it."""
    if region is None:
        return grant.jurisdiction
    prefix = jurisdiction_prefix(region)
    if not prefix.startswith(grant.jurisdiction):
        raise AccessDenied(
            403,
            f"region {region} lies outside the subscription's jurisdiction "
            f"{grant.subscription.jurisdiction}",
            "jurisdiction",
        )
    return prefix


def verify_claims(
    book: AccessBook,
    grant: Grant,
    schema_id: int,
    row: Mapping[str, Any],
    claims: Mapping[str, Any],
) -> dict[str, str]:
    """``match`` / ``no_match`` per claimed field of ``row``. Each claimed value is
    converted to the field's type with the predicates' own converter, so a claim matches
    exactly when an ``eq`` row filter with that value would; converters are cached per
    grant, writer schema and field."""
    converters = grant._converters
    answers: dict[str, str] = {}
    for name, value in claims.items():
        convert = converters.get((schema_id, name))
        if convert is None:
            try:
                convert = field_converter(book.writer_fields(grant, schema_id), name)[0]
            except PredicateError as exc:
                raise AccessDenied(400, f"fields.{name}: {exc}", "bad-request") from None
            converters[(schema_id, name)] = convert
        try:
            target = convert(value)
        except (PredicateError, ValueError) as exc:
            raise AccessDenied(400, f"fields.{name}: {exc}", "bad-request") from None
        answers[name] = "match" if row[name] == target else "no_match"
    return answers


__all__ = [
    "AccessBook",
    "AccessDenied",
    "Grant",
    "ViewError",
    "narrow",
    "verify_claims",
]
