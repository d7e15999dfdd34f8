"""What a stream may receive: active subscriptions, reasons, clock-driven changes."""

from __future__ import annotations

from hub.gateway.access import compute_access
from hub.parties.model import Party, PartyKind, PartyStatus
from hub.subscriptions.model import Subscription, SubscriptionStatus

NOW = 1_800_000_000_000
UNIT = Party(
    id="yonganli",
    name="永安里社区",
    kind=PartyKind.UNIT,
    region_code="110105001001",
    token_hash="scrypt$aa$bb",
)


def sub(sid: str, **kw: object) -> Subscription:
    return Subscription(
        id=sid,
        resource="dibao",
        subscriber="yonganli",
        jurisdiction="110105001001",
        purpose="入户走访",
        **kw,
    )  # type: ignore[arg-type]


def test_active_subscriptions_and_their_rate_limits() -> None:
    access = compute_access(UNIT, [sub("s1", rate_limit_per_s=50), sub("s2")], NOW)
    assert access.open and access.allowed == {"s1", "s2"}
    assert access.rate_limits == {"s1": 50}
    assert access.tier == "village" and access.token_hash == "scrypt$aa$bb"


def test_reasons_when_nothing_is_allowed() -> None:
    revoked = sub("s1", status=SubscriptionStatus.REVOKED)
    suspended = sub("s2", status=SubscriptionStatus.SUSPENDED)
    expired = sub("s3", expires_at_ms=NOW - 1)
    assert compute_access(UNIT, [revoked, suspended], NOW).denied_reason == "revoked"
    assert compute_access(UNIT, [suspended, expired], NOW).denied_reason == "suspended"
    assert compute_access(UNIT, [expired], NOW).denied_reason == "expired"
    assert compute_access(UNIT, [], NOW).denied_reason == "no-subscription"
    parked = UNIT.model_copy(update={"status": PartyStatus.SUSPENDED})
    assert compute_access(parked, [sub("s1")], NOW).denied_reason == "party-suspended"
    old_token = UNIT.model_copy(update={"token_expires_at_ms": NOW})
    assert compute_access(old_token, [sub("s1")], NOW).denied_reason == "token-expired"
    assert compute_access(None, [], NOW, "gone").denied_reason == "revoked"
    mixed = compute_access(UNIT, [revoked, sub("s4")], NOW)
    assert mixed.open and mixed.allowed == {"s4"} and mixed.denied_reason is None


def test_other_parties_subscriptions_never_count() -> None:
    other = sub("s9").model_copy(update={"subscriber": "someone-else"})
    assert not compute_access(UNIT, [other], NOW).open


def test_valid_until_is_the_next_clock_driven_change() -> None:
    ending = sub("s1", expires_at_ms=NOW + 5_000)
    starting = sub("s2", status=SubscriptionStatus.APPROVED, starts_at_ms=NOW + 2_000)
    token = UNIT.model_copy(update={"token_expires_at_ms": NOW + 9_000})
    access = compute_access(token, [ending, starting], NOW)
    assert access.allowed == {"s1"} and access.valid_until_ms == NOW + 2_000
    later = compute_access(token, [ending, starting], NOW + 2_000)
    assert later.allowed == {"s1", "s2"} and later.valid_until_ms == NOW + 5_000
    assert compute_access(UNIT, [sub("s3")], NOW).valid_until_ms is None
