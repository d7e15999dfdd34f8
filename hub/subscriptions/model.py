"""Subscriptions: a consumer's approved policy on one resource."""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.policy.masking import MaskKind
from hub.regions import validate_region_code


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class Subscription(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    resource: str
    subscriber: str
    jurisdiction: str = Field(description="12-digit region code whose subtree is granted")
    purpose: str = Field(min_length=1, description="用途")
    fields: tuple[str, ...] | None = Field(default=None, description="None: every field")
    masking: dict[str, MaskKind] = Field(default_factory=dict)
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    expires_at_ms: int | None = None
    suite: str | None = Field(default=None, description="payload suite override")

    @field_validator("jurisdiction")
    @classmethod
    def _region(cls, v: str) -> str:
        return validate_region_code(v)

    def is_active(self, now_ms: int | None = None) -> bool:
        if self.status is not SubscriptionStatus.ACTIVE:
            return False
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return self.expires_at_ms is None or now_ms < self.expires_at_ms
