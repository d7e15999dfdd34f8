"""The subscription lifecycle as pure functions: (subscription, actor, input, time) → new
subscription, or a :class:`LifecycleError` with the HTTP status and a clear message.

Every step appends an :class:`Event` to the history and bumps ``version``. Who may take a
step:

- request: a party with the subscriber role, for itself, within its own region;
- approve / reject: a pending approval the actor can give — ``owner`` for an approver
  acting for the resource's department, ``security_admin`` for a security admin;
- suspend / resume: the owner's approver or a security admin;
- revoke: the owner's approver, a security admin, or the subscriber itself (withdraw).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.catalogue.model import Resource, ShareAttribute
from hub.catalogue.sharing import required_approvals, subscribable
from hub.parties.model import Party, Role
from hub.regions import is_within, jurisdiction_prefix
from hub.subscriptions.deadlines import COMPLIANCE_CHECK_DAYS, OWNER_ANSWER_DAYS, WorkingCalendar
from hub.subscriptions.model import (
    OPEN_STATES,
    PENDING_STATES,
    Approval,
    ApprovalRole,
    Event,
    Policy,
    Subscription,
    SubscriptionStatus,
)
from hub.subscriptions.requests import SubscriptionRequest

HUB = "hub"  # the actor of automatic steps
DAY_MS = 86_400_000
S = SubscriptionStatus


class LifecycleError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def approval_roles_of(party: Party, resource: Resource) -> frozenset[ApprovalRole]:
    """Which approvals ``party`` may give on requests for ``resource``."""
    roles: set[ApprovalRole] = set()
    if Role.APPROVER in party.roles and party.acts_for == resource.department:
        roles.add(ApprovalRole.OWNER)
    if Role.SECURITY_ADMIN in party.roles:
        roles.add(ApprovalRole.SECURITY)
    return frozenset(roles)


def manages(party: Party, resource: Resource) -> bool:
    """The owner department's approver or a security admin: may suspend, resume, revoke."""
    return bool(approval_roles_of(party, resource))


def _step(
    sub: Subscription,
    at_ms: int,
    action: str,
    status: SubscriptionStatus,
    actor: str,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    **changes: Any,
) -> Subscription:
    event = Event(
        at_ms=at_ms, action=action, status=status, actor=actor, reason=reason, detail=detail
    )
    update: dict[str, Any] = {
        "status": status,
        "history": (*sub.history, event),
        "version": sub.version + 1,
        **changes,
    }
    if reason is not None:
        update["reason"] = reason
    return sub.model_copy(update=update)


def _policy_detail(policy: Policy) -> dict[str, Any]:
    return policy.model_dump(mode="json", exclude_defaults=True)


# -- request and automatic check -----------------------------------------------------------
def open_request(
    sub_id: str,
    request: SubscriptionRequest,
    requester: Party,
    resource: Resource,
    existing: Iterable[Subscription],
    calendar: WorkingCalendar,
    at_ms: int,
) -> Subscription:
    """A new request, checked at once: refused (不予共享), active (无条件共享 within policy)
    or checked and waiting for approvals. The policy must already be validated against the
    resource's schema (:func:`hub.subscriptions.validation.check_policy`)."""
    if Role.SUBSCRIBER not in requester.roles:
        raise LifecycleError(403, f"party {requester.id} lacks the subscriber role")
    jurisdiction = request.jurisdiction or requester.region_code
    if not is_within(jurisdiction, requester.region_code):
        raise LifecycleError(
            400,
            f"jurisdiction {jurisdiction} is wider than or outside your own region "
            f"{requester.region_code}: a scope must be your region or a part of it",
        )
    if subscribable(resource)[0] and request.delivery not in resource.share_methods:
        methods = ", ".join(m.value for m in resource.share_methods)
        raise LifecycleError(
            400, f"resource {resource.code} is shared by {methods}, not {request.delivery.value}"
        )
    for other in existing:
        if (
            other.subscriber == requester.id
            and other.resource == resource.code
            and jurisdiction_prefix(other.jurisdiction) == jurisdiction_prefix(jurisdiction)
            and other.effective_status(at_ms) in OPEN_STATES - {S.EXPIRED}
        ):
            raise LifecycleError(
                409,
                f"duplicate request: subscription {other.id} for {resource.code} in "
                f"{jurisdiction} is already {other.effective_status(at_ms).value}",
            )
    policy = request.policy
    sub = Subscription(
        id=sub_id,
        resource=resource.code,
        subscriber=requester.id,
        jurisdiction=jurisdiction,
        purpose=request.purpose,
        fields=policy.fields,
        masking=policy.masking,
        filters=policy.filters,
        unmasked=policy.unmasked,
        rate_limit_per_s=policy.rate_limit_per_s,
        suite=request.suite,
        delivery=request.delivery,
        status=S.REQUESTED,
        starts_at_ms=request.starts_at_ms,
        duration_days=request.duration_days,
        requested_at_ms=at_ms,
        check_due_ms=calendar.deadline_ms(at_ms, COMPLIANCE_CHECK_DAYS),
        history=(
            Event(
                at_ms=at_ms,
                action="requested",
                status=S.REQUESTED,
                actor=requester.id,
                detail=_policy_detail(policy),
            ),
        ),
    )
    return check(sub, resource, calendar, at_ms)


def check(
    sub: Subscription, resource: Resource, calendar: WorkingCalendar, at_ms: int
) -> Subscription:
    """The compliance check (合规性审查) against the catalogue's sharing rules."""
    allowed, why = subscribable(resource)
    if not allowed:
        return _step(sub, at_ms, "refused", S.REFUSED, HUB, reason=why)
    needed = {ApprovalRole(str(role)) for role in required_approvals(resource)}
    if sub.unmasked:
        # Releasing personal fields from the default masks goes beyond the rules even for
        # 无条件共享: the owner decides.
        needed.add(ApprovalRole.OWNER)
    ordered = tuple(role for role in ApprovalRole if role in needed)
    checked = _step(
        sub,
        at_ms,
        "checked",
        S.CHECKED,
        HUB,
        detail={"required_approvals": [r.value for r in ordered]},
        required_approvals=ordered,
        answer_due_ms=calendar.deadline_ms(at_ms, OWNER_ANSWER_DAYS) if ordered else None,
    )
    if ordered:
        return checked
    reason = (
        "无条件共享 within policy: approved without review"
        if resource.share is ShareAttribute.UNCONDITIONAL
        else "no approval required"
    )
    return _grant(checked, at_ms, HUB, reason)


def _grant(
    sub: Subscription,
    at_ms: int,
    actor: str,
    reason: str | None,
    detail: dict[str, Any] | None = None,
) -> Subscription:
    start = max(at_ms, sub.starts_at_ms or at_ms)
    expires = start + sub.duration_days * DAY_MS if sub.duration_days else sub.expires_at_ms
    approved = _step(
        sub,
        at_ms,
        "approved",
        S.APPROVED,
        actor,
        reason,
        detail,
        starts_at_ms=start,
        expires_at_ms=expires,
    )
    if start > at_ms:
        return approved
    return _step(approved, at_ms, "activated", S.ACTIVE, HUB)


# -- decisions ------------------------------------------------------------------------------
def approve(
    sub: Subscription,
    actor: Party,
    resource: Resource,
    at_ms: int,
    policy: Policy | None = None,
    duration_days: int | None = None,
    starts_at_ms: int | None = None,
) -> Subscription:
    """Give the approvals ``actor`` can give; active once none is pending. The approver may
    set the policy (validated against the schema by the caller) and the duration."""
    if sub.status is not S.CHECKED:
        raise LifecycleError(
            409, f"subscription {sub.id} is {sub.status.value}, not awaiting approval"
        )
    givable = approval_roles_of(actor, resource) & set(sub.pending_approvals)
    if not givable:
        raise _cannot_decide(sub, actor)
    if any(a.by == actor.id for a in sub.approvals):
        raise LifecycleError(409, f"party {actor.id} has already approved {sub.id}")
    changes: dict[str, Any] = {}
    if policy is not None:
        changes.update(
            fields=policy.fields,
            masking=policy.masking,
            filters=policy.filters,
            unmasked=policy.unmasked,
            rate_limit_per_s=policy.rate_limit_per_s,
        )
    if duration_days is not None:
        changes["duration_days"] = duration_days
    if starts_at_ms is not None:
        changes["starts_at_ms"] = starts_at_ms
    # One party gives one approval: the owner's and the security admin's yes must come
    # from two parties (三员 roles are never held together with approver).
    role = min(givable)
    approvals = (*sub.approvals, Approval(role=role, by=actor.id, at_ms=at_ms))
    detail: dict[str, Any] = {"as": role.value}
    if policy is not None:
        detail["policy"] = _policy_detail(policy)
    given = sub.model_copy(update={**changes, "approvals": approvals})
    if given.pending_approvals:
        return _step(given, at_ms, "approval", S.CHECKED, actor.id, detail=detail)
    return _grant(given, at_ms, actor.id, None, detail)


def reject(
    sub: Subscription, actor: Party, resource: Resource, reason: str, at_ms: int
) -> Subscription:
    if sub.status not in PENDING_STATES:
        raise LifecycleError(
            409,
            f"subscription {sub.id} is {sub.status.value}; only a pending request can be rejected",
        )
    if not approval_roles_of(actor, resource) & set(sub.pending_approvals):
        raise _cannot_decide(sub, actor)
    return _step(sub, at_ms, "rejected", S.REJECTED, actor.id, reason=_reason(reason))


def _cannot_decide(sub: Subscription, actor: Party) -> LifecycleError:
    pending = ", ".join(r.value for r in sub.pending_approvals) or "none"
    return LifecycleError(
        403, f"party {actor.id} cannot decide on {sub.id} (pending approvals: {pending})"
    )


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise LifecycleError(400, "a reason is required")
    return text


# -- after approval -------------------------------------------------------------------------
def revoke(
    sub: Subscription, actor: Party, resource: Resource, reason: str, at_ms: int
) -> Subscription:
    """Withdraw a grant (or, by the subscriber, its own request) for good."""
    status = sub.effective_status(at_ms)
    if status not in OPEN_STATES:
        raise LifecycleError(409, f"subscription {sub.id} is {status.value}; nothing to revoke")
    if actor.id != sub.subscriber and not manages(actor, resource):
        raise LifecycleError(
            403,
            f"party {actor.id} may not revoke {sub.id}: only the subscriber, the owner's "
            "approver or a security admin may",
        )
    action = "withdrawn" if actor.id == sub.subscriber else "revoked"
    return _step(sub, at_ms, action, S.REVOKED, actor.id, reason=_reason(reason))


def suspend(
    sub: Subscription, actor: Party, resource: Resource, reason: str, at_ms: int
) -> Subscription:
    status = sub.effective_status(at_ms)
    if status not in (S.ACTIVE, S.APPROVED):
        raise LifecycleError(
            409, f"subscription {sub.id} is {status.value}; only a grant can be suspended"
        )
    _must_manage(sub, actor, resource, "suspend")
    return _step(sub, at_ms, "suspended", S.SUSPENDED, actor.id, reason=_reason(reason))


def resume(sub: Subscription, actor: Party, resource: Resource, at_ms: int) -> Subscription:
    status = sub.effective_status(at_ms)
    if status is not S.SUSPENDED:
        raise LifecycleError(409, f"subscription {sub.id} is {status.value}, not suspended")
    _must_manage(sub, actor, resource, "resume")
    started = sub.starts_at_ms is None or at_ms >= sub.starts_at_ms
    return _step(sub, at_ms, "resumed", S.ACTIVE if started else S.APPROVED, actor.id)


def _must_manage(sub: Subscription, actor: Party, resource: Resource, verb: str) -> None:
    if not manages(actor, resource):
        raise LifecycleError(
            403,
            f"party {actor.id} may not {verb} {sub.id}: only an approver of department "
            f"{resource.department} or a security admin may",
        )


def settle(sub: Subscription, at_ms: int) -> Subscription | None:
    """Write down what the clock changed (approved → active, → expired), or ``None``.

    Events carry the time of the change itself, not of the sweep, so two api instances
    settling the same subscription write the same record.
    """
    current = sub
    if (
        current.status is S.APPROVED
        and current.starts_at_ms is not None
        and at_ms >= current.starts_at_ms
    ):
        current = _step(current, current.starts_at_ms, "activated", S.ACTIVE, HUB)
    if (
        current.status in (S.ACTIVE, S.APPROVED, S.SUSPENDED)
        and current.expires_at_ms is not None
        and at_ms >= current.expires_at_ms
    ):
        current = _step(current, current.expires_at_ms, "expired", S.EXPIRED, HUB)
    return None if current is sub else current
