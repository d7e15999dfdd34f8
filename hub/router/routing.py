"""Routing tables: active subscriptions of one resource, compiled when they change.

The router looks up each record's region code in a :class:`PrefixIndex` (O(levels)) and
gets the routes it must deliver to; nothing about policy is decided per record. A table is
valid until :attr:`RoutingTable.valid_until_ms` (the earliest start or expiry among its
subscriptions): the router recompiles when that passes, since time alone changes no state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.catalogue.model import Classification, Resource, ShareAttribute, ShareMethod
from hub.parties.model import Party, PartyStatus
from hub.policy.masking import Mask, MaskKind, PseudonymKeys, mask_kind
from hub.policy.views import View
from hub.regions import Jurisdiction, PrefixIndex, is_within
from hub.subscriptions.model import Subscription
from hub.subscriptions.model import now_ms as clock_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    subscription: str
    recipient: str
    view: View
    suite: str | None
    identity: bool
    rate_limit_per_s: int | None = None


@dataclass(frozen=True, slots=True)
class RoutingTable:
    resource: Resource
    index: PrefixIndex[Route]
    routes: tuple[Route, ...]
    valid_until_ms: int | None = None
    """When a subscription of this resource starts or expires by the clock: recompile then."""

    def stale(self, at_ms: int) -> bool:
        return self.valid_until_ms is not None and at_ms >= self.valid_until_ms


def earliest_change_ms(tables: Iterable[RoutingTable]) -> int | None:
    """The first :attr:`RoutingTable.valid_until_ms` among ``tables`` (``None``: never)."""
    times = [t.valid_until_ms for t in tables if t.valid_until_ms is not None]
    return min(times) if times else None


def default_masking(resource: Resource, party: Party) -> dict[str, MaskKind]:
    """Masks that apply unless an approver releases a field (``Subscription.unmasked``).

    Defaults per tier and classification: personal fields reach 社区/村 units masked, and
    personal fields of 核心 (core) resources are masked for every tier.
    """
    masks: dict[str, MaskKind] = {}
    core = resource.classification is Classification.CORE
    for item in resource.fields:
        if item.personal is None:
            continue
        if party.is_grassroots or core or item.classification is Classification.CORE:
            masks[item.name] = item.personal.default_mask
    return masks


def policy_masking(
    resource: Resource, party: Party, masking: Mapping[str, Mask], unmasked: Iterable[str]
) -> dict[str, Mask]:
    """The defaults less what the approver released, overlaid by the policy's own masks."""
    released = set(unmasked)
    effective: dict[str, Mask] = {
        name: kind
        for name, kind in default_masking(resource, party).items()
        if name not in released
    }
    effective.update(masking)
    return effective


def effective_masking(
    resource: Resource, subscription: Subscription, party: Party
) -> dict[str, Mask]:
    """The masks the router applies for ``subscription``: defaults for the party's tier and
    the resource's classification, minus fields released by the approver, plus the
    subscription's own masks (which replace a default on the same field)."""
    return policy_masking(resource, party, subscription.masking, subscription.unmasked)


def _pseudonym_view(
    view: View, recipient: str, pseudonyms: PseudonymKeys | None, subscription: str
) -> View:
    if not view.needs_pseudonym_key:
        return view
    if pseudonyms is not None:
        return View(view.fields, view.masking, view.filters, pseudonyms.for_recipient(recipient))
    # Without the hub's pseudonym secret the value must still never leave unmasked.
    log.warning(
        "no pseudonym secret loaded: pseudonym fields of %s are redacted instead", subscription
    )
    masking = tuple(
        (name, MaskKind.REDACT if mask_kind(m) is MaskKind.PSEUDONYM else m)
        for name, m in view.masking
    )
    return View(view.fields, masking, view.filters)


def subscription_view(
    resource: Resource,
    sub: Subscription,
    parties: Mapping[str, Party],
    at_ms: int,
    pseudonyms: PseudonymKeys | None = None,
) -> View | None:
    """The view (row filter, projection, masking) ``sub`` grants on ``resource`` at
    ``at_ms``, or ``None`` when it grants nothing: not active, party unknown or not active,
    jurisdiction outside the party's own region, or the resource not shared.

    The router (per route) and the data service (per call) both shape records with this
    one function, so a call never sees more than the same subscription's stream would.
    """
    if resource.share is ShareAttribute.NOT_SHARED or sub.resource != resource.code:
        return None
    if not sub.is_active(at_ms):
        return None
    party = parties.get(sub.subscriber)
    if party is None or party.status is not PartyStatus.ACTIVE:
        return None
    if not is_within(sub.jurisdiction, party.region_code):
        return None
    masking = effective_masking(resource, sub, party)
    return _pseudonym_view(View.of(sub.fields, masking, sub.filters), party.id, pseudonyms, sub.id)


def compile_routing_table(
    resource: Resource,
    subscriptions: Iterable[Subscription],
    parties: Mapping[str, Party],
    now_ms: int | None = None,
    pseudonyms: PseudonymKeys | None = None,
) -> RoutingTable:
    """Routes for every active subscription on ``resource`` by an active party.

    A subscription whose jurisdiction lies outside its party's own region is narrowed to
    nothing (skipped): a party never receives more than its territory.
    """
    at_ms = clock_ms() if now_ms is None else now_ms
    index: PrefixIndex[Route] = PrefixIndex()
    routes: list[Route] = []
    views: dict[View, View] = {}  # interned: equal views are one object
    changes: list[int] = []
    if resource.share is not ShareAttribute.NOT_SHARED:
        for sub in subscriptions:
            if sub.resource != resource.code or sub.delivery is ShareMethod.SERVICE:
                continue  # a data-service grant is answered per call, never streamed
            change = sub.next_change_ms(at_ms)
            if change is not None:
                changes.append(change)
            candidate = subscription_view(resource, sub, parties, at_ms, pseudonyms)
            if candidate is None:
                continue
            view = views.setdefault(candidate, candidate)
            route = Route(
                sub.id, sub.subscriber, view, sub.suite, view.is_identity, sub.rate_limit_per_s
            )
            index.add(Jurisdiction.of(sub.jurisdiction), route)
            routes.append(route)
    return RoutingTable(resource, index, tuple(routes), min(changes) if changes else None)
