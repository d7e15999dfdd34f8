from hub.catalogue.model import ShareAttribute, ShareMethod
from hub.catalogue.samples import load_sample
from hub.parties.model import Party, PartyKind, PartyStatus
from hub.policy.masking import MaskKind
from hub.router.routing import compile_routing_table
from hub.subscriptions.model import Subscription, SubscriptionStatus

RESOURCE = load_sample("mzj.dibao").resource

PARTIES = {
    p.id: p
    for p in [
        Party(id="rsj", name="人社局", kind=PartyKind.DEPARTMENT, region_code="110105000000"),
        Party(id="street", name="建外街道", kind=PartyKind.UNIT, region_code="110105001000"),
        Party(id="comm", name="永安里社区", kind=PartyKind.UNIT, region_code="110105001001"),
        Party(
            id="comm2",
            name="光华里社区",
            kind=PartyKind.UNIT,
            region_code="110105001002",
            status=PartyStatus.SUSPENDED,
        ),
    ]
}


def sub(sid: str, who: str, region: str, **kw: object) -> Subscription:
    return Subscription(
        id=sid, resource="dibao", subscriber=who, jurisdiction=region, purpose="test", **kw
    )  # type: ignore[arg-type]


def test_routes_by_region_with_grassroots_masking() -> None:
    table = compile_routing_table(
        RESOURCE,
        [
            sub("s1", "rsj", "110105000000"),
            sub("s2", "street", "110105001000"),
            sub("s3", "comm", "110105001001"),
        ],
        PARTIES,
    )
    routes = {r.recipient: r for r in table.index.match("110105001001")}
    assert set(routes) == {"rsj", "street", "comm"}
    assert routes["rsj"].view.is_identity and routes["street"].view.is_identity
    assert dict(routes["comm"].view.masking) == {
        "id_card": MaskKind.ID_CARD,
        "name": MaskKind.NAME,
        "address": MaskKind.ADDRESS,
    }
    assert {r.recipient for r in table.index.match("110105002001")} == {"rsj"}


def test_inactive_and_overreaching_subscriptions_get_no_route() -> None:
    table = compile_routing_table(
        RESOURCE,
        [
            sub("revoked", "rsj", "110105000000", status=SubscriptionStatus.REVOKED),
            sub("expired", "street", "110105001000", expires_at_ms=1),
            sub("suspended-party", "comm2", "110105001002"),
            sub("too-wide", "comm", "110105001000"),  # community asking for the whole street
            sub("unknown-party", "ghost", "110105001000"),
            Subscription(
                id="other",
                resource="hukou",
                subscriber="rsj",
                jurisdiction="110105000000",
                purpose="x",
            ),
        ],
        PARTIES,
    )
    assert table.routes == ()


def test_not_shared_resource_has_no_routes() -> None:
    closed = RESOURCE.model_copy(update={"share": ShareAttribute.NOT_SHARED})
    table = compile_routing_table(closed, [sub("s1", "rsj", "110105000000")], PARTIES)
    assert table.routes == ()


def test_subscription_masking_adds_to_the_default() -> None:
    table = compile_routing_table(
        RESOURCE,
        [
            sub(
                "s",
                "comm",
                "110105001001",
                masking={"id_card": MaskKind.REDACT},
                fields=("id_card", "region_code"),
            )
        ],
        PARTIES,
    )
    (route,) = table.routes
    assert route.view.fields == ("id_card", "region_code")
    assert dict(route.view.masking)["id_card"] is MaskKind.REDACT


def test_a_data_service_grant_is_never_streamed() -> None:
    table = compile_routing_table(
        RESOURCE,
        [
            sub("api-only", "street", "110105001000", delivery=ShareMethod.SERVICE),
            sub("stream", "rsj", "110105000000", delivery=ShareMethod.STREAM),
        ],
        PARTIES,
    )
    assert [r.subscription for r in table.routes] == ["stream"]
