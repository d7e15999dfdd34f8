import pytest

from hub.catalogue.model import Resource
from hub.parties.model import Party
from hub.subscriptions import lifecycle
from hub.subscriptions.deadlines import WorkingCalendar
from hub.subscriptions.lifecycle import LifecycleError
from hub.subscriptions.model import ApprovalRole, Policy, Subscription, SubscriptionStatus
from hub.subscriptions.requests import SubscriptionRequest
from tests.unit.subscriptions.builders import (
    COMMUNITY,
    CONDITIONAL,
    CORE,
    MZJ_APPROVER,
    NOT_SHARED,
    OTHER_APPROVER,
    RSJ,
    SECURITY,
    STREET,
    T0,
    UNCONDITIONAL,
    request,
)

S = SubscriptionStatus
CAL = WorkingCalendar()
DAY = 86_400_000


def open_(
    resource: Resource = CONDITIONAL,
    who: Party = STREET,
    req: SubscriptionRequest | None = None,
    existing: tuple[Subscription, ...] = (),
) -> Subscription:
    return lifecycle.open_request("sub-1", req or request(), who, resource, existing, CAL, T0)


def actions(sub: Subscription) -> list[str]:
    return [e.action for e in sub.history]


def test_unconditional_within_policy_is_granted_at_once() -> None:
    sub = open_(UNCONDITIONAL, req=request(duration_days=30))
    assert sub.status is S.ACTIVE and sub.is_active(T0)
    assert actions(sub) == ["requested", "checked", "approved", "activated"]
    assert sub.history[2].actor == "hub" and "无条件共享" in (sub.history[2].reason or "")
    assert sub.expires_at_ms == T0 + 30 * DAY
    assert sub.jurisdiction == STREET.region_code  # defaults to the requester's region


def test_unconditional_asking_for_unmasked_fields_needs_the_owner() -> None:
    sub = open_(UNCONDITIONAL, COMMUNITY, request(unmasked=["name"]))
    assert sub.status is S.CHECKED and sub.pending_approvals == (ApprovalRole.OWNER,)


def test_not_shared_is_refused_at_once_with_the_reason() -> None:
    sub = open_(NOT_SHARED.model_copy(update={"share_methods": ()}))
    assert sub.status is S.REFUSED and "不予共享" in (sub.reason or "")
    assert actions(sub) == ["requested", "refused"]


def test_conditional_waits_for_the_owners_approver_with_deadlines() -> None:
    sub = open_()
    assert sub.status is S.CHECKED and sub.pending_approvals == (ApprovalRole.OWNER,)
    assert sub.check_due_ms == CAL.deadline_ms(T0, 2)
    assert sub.answer_due_ms == CAL.deadline_ms(T0, 5) and sub.due_ms() == sub.answer_due_ms
    assert not sub.overdue(T0) and sub.overdue(sub.answer_due_ms + 1)
    with pytest.raises(LifecycleError, match="cannot decide") as wrong:
        lifecycle.approve(sub, OTHER_APPROVER, CONDITIONAL, T0)  # another department
    assert wrong.value.status == 403
    with pytest.raises(LifecycleError, match="cannot decide"):
        lifecycle.approve(sub, SECURITY, CONDITIONAL, T0)  # not 核心: not theirs
    narrowed = Policy(fields=("name", "region_code", "amount"))
    done = lifecycle.approve(sub, MZJ_APPROVER, CONDITIONAL, T0 + 1, narrowed, 90)
    assert done.status is S.ACTIVE and done.fields == ("name", "region_code", "amount")
    assert done.expires_at_ms == T0 + 1 + 90 * DAY
    assert actions(done)[-2:] == ["approved", "activated"]
    assert done.history[-2].actor == "mzj-approver" and done.history[-2].detail is not None
    assert done.version == sub.version + 2 and not done.overdue(T0 + 100 * DAY)


def test_core_needs_the_owner_and_the_security_admin() -> None:
    sub = open_(CORE)
    assert sub.pending_approvals == (ApprovalRole.OWNER, ApprovalRole.SECURITY)
    half = lifecycle.approve(sub, SECURITY, CORE, T0)
    assert half.status is S.CHECKED and half.pending_approvals == (ApprovalRole.OWNER,)
    with pytest.raises(LifecycleError, match="cannot decide"):
        lifecycle.approve(half, SECURITY, CORE, T0)  # one party, one approval
    done = lifecycle.approve(half, MZJ_APPROVER, CORE, T0)
    assert done.status is S.ACTIVE
    assert {a.role for a in done.approvals} == {ApprovalRole.OWNER, ApprovalRole.SECURITY}


def test_reject_needs_a_reason_and_is_final() -> None:
    sub = open_()
    with pytest.raises(LifecycleError, match="reason"):
        lifecycle.reject(sub, MZJ_APPROVER, CONDITIONAL, "  ", T0)
    rejected = lifecycle.reject(sub, MZJ_APPROVER, CONDITIONAL, "用途不明确", T0)
    assert rejected.status is S.REJECTED and rejected.reason == "用途不明确"
    with pytest.raises(LifecycleError) as again:
        lifecycle.approve(rejected, MZJ_APPROVER, CONDITIONAL, T0)
    assert again.value.status == 409


def test_scope_wider_than_the_requesters_own_is_refused() -> None:
    with pytest.raises(LifecycleError, match="wider") as wide:
        open_(who=COMMUNITY, req=request(jurisdiction=STREET.region_code))
    assert wide.value.status == 400
    narrower = open_(who=STREET, req=request(jurisdiction=COMMUNITY.region_code))
    assert narrower.jurisdiction == COMMUNITY.region_code


def test_duplicate_open_request_is_a_conflict() -> None:
    first = open_()
    with pytest.raises(LifecycleError, match="duplicate") as dup:
        open_(existing=(first,))
    assert dup.value.status == 409
    rejected = lifecycle.reject(first, MZJ_APPROVER, CONDITIONAL, "no", T0)
    assert open_(existing=(rejected,)).status is S.CHECKED  # a final one does not block


def test_subscriber_role_and_share_method_are_required() -> None:
    from hub.parties.model import Role

    no_role = STREET.model_copy(update={"roles": (Role.PUBLISHER,)})
    with pytest.raises(LifecycleError, match="subscriber role"):
        open_(who=no_role)
    with pytest.raises(LifecycleError, match="not file"):
        open_(req=request(delivery="file"))


def test_revoke_suspend_resume() -> None:
    active = open_(UNCONDITIONAL)
    with pytest.raises(LifecycleError, match="may not revoke") as stranger:
        lifecycle.revoke(active, RSJ, UNCONDITIONAL, "why", T0)
    assert stranger.value.status == 403
    with pytest.raises(LifecycleError, match="may not suspend"):
        lifecycle.suspend(active, STREET, UNCONDITIONAL, "x", T0)  # the subscriber cannot
    suspended = lifecycle.suspend(active, MZJ_APPROVER, UNCONDITIONAL, "核查", T0)
    assert suspended.status is S.SUSPENDED and not suspended.is_active(T0)
    resumed = lifecycle.resume(suspended, SECURITY, UNCONDITIONAL, T0 + 1)
    assert resumed.status is S.ACTIVE
    revoked = lifecycle.revoke(resumed, MZJ_APPROVER, UNCONDITIONAL, "违规使用", T0 + 2)
    assert revoked.status is S.REVOKED and actions(revoked)[-1] == "revoked"
    with pytest.raises(LifecycleError, match="nothing to revoke"):
        lifecycle.revoke(revoked, MZJ_APPROVER, UNCONDITIONAL, "again", T0)
    withdrawn = lifecycle.revoke(open_(), STREET, CONDITIONAL, "不再需要", T0)
    assert actions(withdrawn)[-1] == "withdrawn"


def test_start_and_expiry_follow_the_clock_and_settle_writes_them_down() -> None:
    sub = open_(UNCONDITIONAL, req=request(starts_at_ms=T0 + DAY, duration_days=1))
    assert sub.status is S.APPROVED and not sub.is_active(T0)
    assert sub.next_change_ms(T0) == T0 + DAY
    assert sub.is_active(T0 + DAY) and sub.effective_status(T0 + 2 * DAY) is S.EXPIRED
    assert lifecycle.settle(sub, T0) is None
    started = lifecycle.settle(sub, T0 + DAY + 5)
    assert started is not None and started.status is S.ACTIVE
    assert started.history[-1].at_ms == T0 + DAY  # stamped at the change, not the sweep
    ended = lifecycle.settle(sub, T0 + 3 * DAY)
    assert ended is not None and ended.status is S.EXPIRED
    assert actions(ended)[-2:] == ["activated", "expired"]
    assert lifecycle.settle(sub, T0 + 3 * DAY) == ended  # two sweepers write the same record
