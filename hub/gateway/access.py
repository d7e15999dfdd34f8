"""What a connected subscriber may receive right now, and until when.

:func:`compute_access` turns a party and its subscriptions into a :class:`PartyAccess`: the
subscription ids whose frames may be sent, their rate limits, and the earliest moment the
answer changes by the clock alone (a start, an expiry, the token's expiry). The gateway
recomputes it when the party or one of its subscriptions changes, and when that moment
passes, and cuts a stream off when nothing is allowed any more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.parties.model import Party, PartyKind, PartyStatus
from hub.regions import Level
from hub.subscriptions.model import Subscription, SubscriptionStatus

# The same tier labels as the router's metrics, so dashboards can join the two.
TIER_NAMES = {
    Level.PROVINCE: "province",
    Level.CITY: "city",
    Level.COUNTY: "county",
    Level.TOWNSHIP: "township",
    Level.VILLAGE: "village",
}

# When several subscriptions are closed, the reason reported is the most telling one.
_REASON_ORDER = (
    (SubscriptionStatus.REVOKED, "revoked"),
    (SubscriptionStatus.SUSPENDED, "suspended"),
    (SubscriptionStatus.EXPIRED, "expired"),
)


def tier_of(party: Party) -> str:
    """The metrics label of a party: ``department`` or its administrative level."""
    return "department" if party.kind is PartyKind.DEPARTMENT else TIER_NAMES[party.level]


@dataclass(frozen=True, slots=True)
class PartyAccess:
    party_id: str
    tier: str
    allowed: frozenset[str]
    rate_limits: dict[str, int] = field(default_factory=dict)
    denied_reason: str | None = None
    denied_message: str = ""
    valid_until_ms: int | None = None
    token_hash: str | None = None

    @property
    def open(self) -> bool:
        return bool(self.allowed)


def compute_access(
    party: Party | None,
    subscriptions: Iterable[Subscription],
    now_ms: int,
    party_id: str = "",
) -> PartyAccess:
    """The access of ``party`` at ``now_ms`` from its stream subscriptions."""
    if party is None:
        return PartyAccess(
            party_id, "unknown", frozenset(), denied_reason="revoked", denied_message="no party"
        )
    tier = tier_of(party)
    if party.status is not PartyStatus.ACTIVE:
        return PartyAccess(
            party.id,
            tier,
            frozenset(),
            denied_reason="party-suspended",
            denied_message=f"party {party.id} is {party.status.value}",
            token_hash=party.token_hash,
        )
    if party.token_expired(now_ms):
        return PartyAccess(
            party.id,
            tier,
            frozenset(),
            denied_reason="token-expired",
            denied_message=f"the token of party {party.id} expired",
            token_hash=party.token_hash,
        )
    allowed: set[str] = set()
    limits: dict[str, int] = {}
    statuses: dict[SubscriptionStatus, str] = {}
    changes: list[int] = []
    if party.token_expires_at_ms is not None:
        changes.append(party.token_expires_at_ms)
    for sub in subscriptions:
        if sub.subscriber != party.id:
            continue
        status = sub.effective_status(now_ms)
        nxt = sub.next_change_ms(now_ms)
        if nxt is not None and nxt > now_ms:
            changes.append(nxt)
        if status is SubscriptionStatus.ACTIVE:
            allowed.add(sub.id)
            if sub.rate_limit_per_s is not None:
                limits[sub.id] = sub.rate_limit_per_s
        else:
            statuses.setdefault(status, sub.id)
    reason, message = None, ""
    if not allowed:
        reason, message = "no-subscription", f"party {party.id} holds no active subscription"
        for status, name in _REASON_ORDER:
            if status in statuses:
                reason = name
                message = f"subscription {statuses[status]} is {status.value}"
                break
    return PartyAccess(
        party.id,
        tier,
        frozenset(allowed),
        limits,
        reason,
        message,
        min(changes) if changes else None,
        party.token_hash,
    )
