"""Routing tables: active subscriptions of one resource, compiled when they change.

The router looks up each record's region code in a :class:`PrefixIndex` (O(levels)) and
gets the routes it must deliver to; nothing about policy is decided per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.catalogue.model import Resource, ShareAttribute
from hub.parties.model import Party, PartyStatus
from hub.policy.masking import MaskKind
from hub.policy.views import View
from hub.regions import Jurisdiction, PrefixIndex, is_within
from hub.subscriptions.model import Subscription


@dataclass(frozen=True, slots=True)
class Route:
    subscription: str
    recipient: str
    view: View
    suite: str | None
    identity: bool


@dataclass(frozen=True, slots=True)
class RoutingTable:
    resource: Resource
    index: PrefixIndex[Route]
    routes: tuple[Route, ...]


def effective_masking(
    resource: Resource, subscription: Subscription, party: Party
) -> dict[str, MaskKind]:
    """The subscription's masking plus the catalogue default for grassroots units.

    Personal-data fields reach 社区/村 units masked unless the subscription masks them
    some other way; the default cannot be switched off by a subscription.
    """
    masking: dict[str, MaskKind] = dict(subscription.masking)
    if party.is_grassroots:
        for name, tag in resource.personal_fields().items():
            masking.setdefault(name, tag.default_mask)
    return masking


def compile_routing_table(
    resource: Resource,
    subscriptions: Iterable[Subscription],
    parties: Mapping[str, Party],
    now_ms: int | None = None,
) -> RoutingTable:
    """Routes for every active subscription on ``resource`` by an active party.

    A subscription whose jurisdiction lies outside its party's own region is narrowed to
    nothing (skipped): a party never receives more than its territory.
    """
    index: PrefixIndex[Route] = PrefixIndex()
    routes: list[Route] = []
    views: dict[View, View] = {}  # interned: equal views are one object
    if resource.share is not ShareAttribute.NOT_SHARED:
        for sub in subscriptions:
            if sub.resource != resource.code or not sub.is_active(now_ms):
                continue
            party = parties.get(sub.subscriber)
            if party is None or party.status is not PartyStatus.ACTIVE:
                continue
            if not is_within(sub.jurisdiction, party.region_code):
                continue
            masking = effective_masking(resource, sub, party)
            candidate = View.of(sub.fields, masking)
            view = views.setdefault(candidate, candidate)
            route = Route(sub.id, party.id, view, sub.suite, view.is_identity)
            index.add(Jurisdiction.of(sub.jurisdiction), route)
            routes.append(route)
    return RoutingTable(resource, index, tuple(routes))
