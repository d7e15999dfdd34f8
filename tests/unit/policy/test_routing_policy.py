"""Policies compiled into routing tables: defaults per tier and classification, grants,
pseudonym keys per recipient, and the time a table stays valid."""

from hub.catalogue.model import Classification
from hub.catalogue.samples import load_sample
from hub.parties.model import Party, PartyKind
from hub.policy.masking import MaskKind, PseudonymKeys
from hub.policy.predicates import Op, Predicate
from hub.router.routing import (
    compile_routing_table,
    default_masking,
    earliest_change_ms,
    effective_masking,
)
from hub.subscriptions.model import Subscription, SubscriptionStatus

RESOURCE = load_sample("mzj.dibao").resource  # 重要 (important), personal: id_card, name, address
CORE = RESOURCE.model_copy(update={"classification": Classification.CORE})
DEPT = Party(id="rsj", name="人社局", kind=PartyKind.DEPARTMENT, region_code="110105000000")
STREET = Party(id="street", name="建外街道", kind=PartyKind.UNIT, region_code="110105001000")
COMM = Party(id="comm", name="永安里社区", kind=PartyKind.UNIT, region_code="110105001001")
PARTIES = {p.id: p for p in (DEPT, STREET, COMM)}
PERSONAL = {"id_card": MaskKind.ID_CARD, "name": MaskKind.NAME, "address": MaskKind.ADDRESS}


def sub(sid: str, who: Party, **kw: object) -> Subscription:
    return Subscription.model_validate(
        {
            "id": sid,
            "resource": "dibao",
            "subscriber": who.id,
            "jurisdiction": who.region_code,
            "purpose": "test",
            **kw,
        }
    )


def test_defaults_per_tier_and_classification() -> None:
    assert default_masking(RESOURCE, DEPT) == {}
    assert default_masking(RESOURCE, STREET) == {}
    assert default_masking(RESOURCE, COMM) == PERSONAL  # 社区/村: always masked
    assert default_masking(CORE, DEPT) == PERSONAL  # 核心: masked for every tier
    assert default_masking(CORE, STREET) == PERSONAL


def test_an_approver_may_release_a_default_and_the_policy_may_add_masks() -> None:
    granted = sub("s", COMM, unmasked=["name"], masking={"household_size": "redact"})
    masks = effective_masking(RESOURCE, granted, COMM)
    assert "name" not in masks
    assert masks["id_card"] is MaskKind.ID_CARD and masks["household_size"] is MaskKind.REDACT


def test_pseudonym_views_carry_each_recipients_key() -> None:
    keys = PseudonymKeys(bytes(range(32)))
    subs = [
        sub("a", DEPT, masking={"id_card": "pseudonym"}),
        sub("b", STREET, masking={"id_card": "pseudonym"}),
    ]
    table = compile_routing_table(RESOURCE, subs, PARTIES, pseudonyms=keys)
    by = {r.recipient: r.view for r in table.routes}
    assert by["rsj"].pseudonym_key == keys.for_recipient("rsj")
    assert by["rsj"] is not by["street"] and by["rsj"].pseudonym_key != by["street"].pseudonym_key
    # Without the hub secret the field is redacted, never passed in clear.
    (route, _) = compile_routing_table(RESOURCE, subs, PARTIES).routes
    assert dict(route.view.masking)["id_card"] is MaskKind.REDACT


def test_filters_and_rate_limit_reach_the_route() -> None:
    only_big = Predicate(field="household_size", op=Op.GE, value=3)
    table = compile_routing_table(
        RESOURCE, [sub("s", DEPT, filters=[only_big], rate_limit_per_s=50)], PARTIES
    )
    (route,) = table.routes
    assert route.view.filters == (only_big,) and not route.identity
    assert route.rate_limit_per_s == 50


def test_table_is_valid_until_the_next_start_or_expiry() -> None:
    now = 1_000_000
    subs = [
        sub("ends", DEPT, expires_at_ms=now + 500),
        sub("later", STREET, expires_at_ms=now + 9_000),
        sub(
            "starts",
            COMM,
            status=SubscriptionStatus.APPROVED,
            starts_at_ms=now + 200,
            expires_at_ms=now + 5_000,
        ),
        sub("gone", COMM, expires_at_ms=now - 1),
    ]
    table = compile_routing_table(RESOURCE, subs, PARTIES, now_ms=now)
    assert {r.subscription for r in table.routes} == {"ends", "later"}
    assert (
        table.valid_until_ms == now + 200 and not table.stale(now + 199) and table.stale(now + 200)
    )
    after = compile_routing_table(RESOURCE, subs, PARTIES, now_ms=now + 600)
    assert {r.subscription for r in after.routes} == {"later", "starts"}
    assert after.valid_until_ms == now + 5_000
    assert earliest_change_ms([table, after]) == now + 200
    assert earliest_change_ms([]) is None
