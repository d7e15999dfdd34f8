"""Request bodies of the subscription endpoints (and their OpenAPI schemas)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.catalogue.model import ShareMethod
from hub.policy.masking import Mask
from hub.policy.predicates import Predicate
from hub.regions import validate_region_code
from hub.subscriptions.model import Policy

MAX_DURATION_DAYS = 3660
MAX_TIME_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubscriptionRequest(_Body):
    """A request for one resource (申请): purpose, scope, fields, policy wishes, duration."""

    resource: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    purpose: str = Field(min_length=1, max_length=500, description="用途")
    jurisdiction: str | None = Field(
        default=None,
        description="12-digit region code: your own region (default) or a part of it",
    )
    fields: tuple[str, ...] | None = Field(
        default=None, max_length=500, description="fields to receive; omitted: every field"
    )
    masking: dict[str, Mask] = Field(default_factory=dict, max_length=500)
    filters: tuple[Predicate, ...] = Field(default=(), max_length=50)
    unmasked: tuple[str, ...] = Field(
        default=(),
        max_length=500,
        description="personal fields asked for unmasked (needs the owner's approval)",
    )
    rate_limit_per_s: int | None = Field(default=None, ge=1, le=1_000_000)
    duration_days: int | None = Field(default=None, ge=1, le=MAX_DURATION_DAYS)
    starts_at_ms: int | None = Field(default=None, ge=0, le=MAX_TIME_MS)
    delivery: ShareMethod = ShareMethod.STREAM
    suite: Literal["AES-256-GCM", "SM4-GCM"] | None = None

    @field_validator("jurisdiction")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return None if v is None else validate_region_code(v)

    @property
    def policy(self) -> Policy:
        return Policy(
            fields=self.fields,
            masking=self.masking,
            filters=self.filters,
            unmasked=self.unmasked,
            rate_limit_per_s=self.rate_limit_per_s,
        )


class ApproveRequest(_Body):
    """An approval, optionally setting the policy (replacing the requested one whole)."""

    policy: Policy | None = None
    duration_days: int | None = Field(default=None, ge=1, le=MAX_DURATION_DAYS)
    starts_at_ms: int | None = Field(default=None, ge=0, le=MAX_TIME_MS)


class ReasonRequest(_Body):
    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


class ResumeRequest(_Body):
    reason: str | None = Field(default=None, max_length=1000)
