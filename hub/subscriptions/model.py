"""Subscriptions: a party's request for one resource, its approvals, policy and history.

One record per subscription in the compacted ``_govhub.subscriptions`` topic holds the
current state *and* the full history of that subscription (:class:`Event`), so the latest
record alone answers "who asked, who decided what, when and why" — compaction never loses
it. Lifecycle (see ``hub/subscriptions/lifecycle.py`` and ``docs/subscriptions.md``)::

    requested → checked → approved → active → expired
                       ↘ rejected   ↘ suspended ↔ active
    requested → refused                active/approved/suspended → revoked

``approved`` becomes ``active`` at ``starts_at_ms`` and ``active`` becomes ``expired`` at
``expires_at_ms`` with no write: :meth:`Subscription.effective_status` and
:meth:`Subscription.is_active` read the clock; the api's sweeper records the change later.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.catalogue.model import ShareMethod
from hub.policy.masking import Mask
from hub.policy.predicates import Predicate
from hub.regions import validate_region_code


def now_ms() -> int:
    return int(time.time() * 1000)


class SubscriptionStatus(StrEnum):
    REQUESTED = "requested"  # received, compliance check pending
    CHECKED = "checked"  # compliance check passed, waiting for approvals
    APPROVED = "approved"  # every approval given, not started yet
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REJECTED = "rejected"  # an approver said no (with reason)
    REFUSED = "refused"  # the resource may not be shared (不予共享), at once
    EXPIRED = "expired"
    REVOKED = "revoked"


OPEN_STATES = frozenset(
    {
        SubscriptionStatus.REQUESTED,
        SubscriptionStatus.CHECKED,
        SubscriptionStatus.APPROVED,
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.SUSPENDED,
    }
)
FINAL_STATES = frozenset(SubscriptionStatus) - OPEN_STATES
PENDING_STATES = frozenset({SubscriptionStatus.REQUESTED, SubscriptionStatus.CHECKED})


class ApprovalRole(StrEnum):
    """Whose yes a request needs."""

    OWNER = "owner"  # an approver of the department that owns the resource
    SECURITY = "security_admin"  # a security admin (安全保密管理员), for 核心 data


class Event(BaseModel):
    """One step of a subscription's history."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at_ms: int
    action: str = Field(description="requested, checked, approved, activated, rejected, ...")
    status: SubscriptionStatus = Field(description="the status after this step")
    actor: str = Field(description="party id, or 'hub' for automatic steps")
    reason: str | None = None
    detail: dict[str, Any] | None = Field(default=None, description="e.g. the policy granted")


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: ApprovalRole
    by: str
    at_ms: int


class Subscription(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    resource: str
    subscriber: str
    jurisdiction: str = Field(description="12-digit region code whose subtree is granted")
    purpose: str = Field(min_length=1, description="用途")
    # -- policy ---------------------------------------------------------------------------
    fields: tuple[str, ...] | None = Field(default=None, description="None: every field")
    masking: dict[str, Mask] = Field(default_factory=dict)
    filters: tuple[Predicate, ...] = Field(default=(), description="row predicates, all must hold")
    unmasked: tuple[str, ...] = Field(
        default=(), description="personal fields an approver released from the default masks"
    )
    rate_limit_per_s: int | None = Field(default=None, ge=1)
    suite: str | None = Field(default=None, description="payload suite override")
    delivery: ShareMethod = Field(
        default=ShareMethod.STREAM, description="one of the resource's share methods"
    )
    # -- lifecycle ------------------------------------------------------------------------
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    starts_at_ms: int | None = None
    expires_at_ms: int | None = None
    duration_days: int | None = Field(default=None, ge=1)
    requested_at_ms: int | None = None
    check_due_ms: int | None = Field(default=None, description="compliance check deadline")
    answer_due_ms: int | None = Field(default=None, description="owner's answer deadline")
    required_approvals: tuple[ApprovalRole, ...] = ()
    approvals: tuple[Approval, ...] = ()
    reason: str | None = Field(default=None, description="reason of the last decision")
    history: tuple[Event, ...] = ()
    version: int = 0

    @field_validator("jurisdiction")
    @classmethod
    def _region(cls, v: str) -> str:
        return validate_region_code(v)

    # -- time-driven state ----------------------------------------------------------------
    def effective_status(self, at_ms: int | None = None) -> SubscriptionStatus:
        """The status now: ``approved`` past its start is active, active past its expiry is
        expired, even before the hub has written that down."""
        t = now_ms() if at_ms is None else at_ms
        status = self.status
        if status is SubscriptionStatus.APPROVED and (
            self.starts_at_ms is None or t >= self.starts_at_ms
        ):
            status = SubscriptionStatus.ACTIVE
        if status in (
            SubscriptionStatus.ACTIVE,
            SubscriptionStatus.APPROVED,
            SubscriptionStatus.SUSPENDED,
        ) and (self.expires_at_ms is not None and t >= self.expires_at_ms):
            status = SubscriptionStatus.EXPIRED
        return status

    def is_active(self, now_ms: int | None = None) -> bool:
        return self.effective_status(now_ms) is SubscriptionStatus.ACTIVE

    def next_change_ms(self, at_ms: int) -> int | None:
        """When the effective status next changes by the clock alone (start or expiry)."""
        status = self.effective_status(at_ms)
        if status is SubscriptionStatus.APPROVED and self.starts_at_ms is not None:
            return self.starts_at_ms
        if status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED):
            return self.expires_at_ms
        return None

    # -- approvals and deadlines ----------------------------------------------------------
    @property
    def pending_approvals(self) -> tuple[ApprovalRole, ...]:
        given = {a.role for a in self.approvals}
        return tuple(r for r in self.required_approvals if r not in given)

    def due_ms(self) -> int | None:
        """The deadline the request is waiting on, if any."""
        if self.status is SubscriptionStatus.REQUESTED:
            return self.check_due_ms
        if self.status is SubscriptionStatus.CHECKED:
            return self.answer_due_ms
        return None

    def overdue(self, at_ms: int | None = None) -> bool:
        due = self.due_ms()
        return due is not None and (now_ms() if at_ms is None else at_ms) > due


class Policy(BaseModel):
    """The part of a subscription that decides what reaches the subscriber."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: tuple[str, ...] | None = Field(
        default=None, max_length=500, description="fields to deliver; omitted: every field"
    )
    masking: dict[str, Mask] = Field(default_factory=dict, description="mask per field")
    filters: tuple[Predicate, ...] = Field(default=(), max_length=50)
    unmasked: tuple[str, ...] = Field(default=(), max_length=500)
    rate_limit_per_s: int | None = Field(default=None, ge=1, le=1_000_000)

    @classmethod
    def of(cls, sub: Subscription) -> Policy:
        return cls(
            fields=sub.fields,
            masking=sub.masking,
            filters=sub.filters,
            unmasked=sub.unmasked,
            rate_limit_per_s=sub.rate_limit_per_s,
        )
