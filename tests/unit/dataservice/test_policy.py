"""The data service shapes rows with the router's policy: the same views, same masks."""

from __future__ import annotations

import pytest

from hub.catalogue.samples import load_sample
from hub.dataservice.access import AccessDenied, Grant, narrow
from hub.demo.world import build_members, build_subscriptions
from hub.policy.masking import MaskKind
from hub.policy.views import compile_view
from hub.router.routing import compile_routing_table, subscription_view
from hub.subscriptions.model import SubscriptionStatus, now_ms


def test_router_routes_and_service_grants_share_one_view() -> None:
    sample = load_sample("mzj.dibao")
    members = build_members()
    parties = {pid: m.party for pid, m in members.items()}
    subs = build_subscriptions(sample.resource.code)
    at = now_ms()
    table = compile_routing_table(sample.resource, subs, parties, at)
    by_sub = {route.subscription: route.view for route in table.routes}
    assert len(by_sub) == len(subs)
    for sub in subs:
        assert subscription_view(sample.resource, sub, parties, at) == by_sub[sub.id]
    community = next(s for s in subs if s.subscriber == "jianwai-yonganli")
    view = subscription_view(sample.resource, community, parties, at)
    assert view is not None and dict(view.masking)["name"] is MaskKind.NAME
    revoked = community.model_copy(update={"status": SubscriptionStatus.REVOKED})
    assert subscription_view(sample.resource, revoked, parties, at) is None


def test_listing_region_must_lie_inside_the_jurisdiction() -> None:
    sample = load_sample("mzj.dibao")
    members = build_members()
    parties = {pid: m.party for pid, m in members.items()}
    sub = next(s for s in build_subscriptions("dibao") if s.subscriber == "jianwai")
    view = subscription_view(sample.resource, sub, parties, now_ms())
    assert view is not None
    compile_view(view, sample.schema_json)  # the grant's view compiles on the writer schema
    grant = Grant(sub, sample.resource, view, "110105001", None, f"{sub.id}@0")
    assert narrow(grant, None) == "110105001"
    assert narrow(grant, "110105001002") == "110105001002"
    with pytest.raises(AccessDenied) as refused:
        narrow(grant, "110105002000")
    assert refused.value.status == 403
    assert grant.sees_region("110105001001") and not grant.sees_region("110105002001")
    assert not grant.sees_region("")
