"""Request bodies of the party endpoints (and their OpenAPI schemas)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.parties.model import PARTY_ID_PATTERN, PartyKind, Role
from hub.regions import validate_region_code

MAX_TOKEN_TTL_DAYS = 3660
DEFAULT_TOKEN_TTL_DAYS = 365


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartyCreate(_Body):
    id: str = Field(pattern=PARTY_ID_PATTERN, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    kind: PartyKind
    region_code: str = Field(description="12-digit 统计用区划代码")
    parent: str | None = Field(default=None, pattern=PARTY_ID_PATTERN, max_length=64)
    department: str | None = Field(default=None, pattern=PARTY_ID_PATTERN, max_length=64)
    contact: str | None = Field(default=None, max_length=500)
    roles: tuple[Role, ...] = Field(default=(Role.SUBSCRIBER,), max_length=6)
    mtls_subject: str | None = Field(default=None, min_length=1, max_length=500)
    token_ttl_days: int = Field(default=DEFAULT_TOKEN_TTL_DAYS, ge=1, le=MAX_TOKEN_TTL_DAYS)

    @field_validator("region_code")
    @classmethod
    def _region(cls, v: str) -> str:
        return validate_region_code(v)


class PartyUpdate(_Body):
    """Descriptive fields; omitted fields stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    contact: str | None = Field(default=None, max_length=500)
    mtls_subject: str | None = Field(default=None, min_length=1, max_length=500)


class RolesUpdate(_Body):
    roles: tuple[Role, ...] = Field(max_length=6)


class TokenRotate(_Body):
    ttl_days: int = Field(default=DEFAULT_TOKEN_TTL_DAYS, ge=1, le=MAX_TOKEN_TTL_DAYS)


class KeyAdd(_Body):
    kem: str = Field(pattern=r"^(x25519|mlkem768-x25519)$")
    key: str = Field(min_length=1, max_length=4096, description="base64 of the raw public key")


class StatusChange(_Body):
    reason: str | None = Field(default=None, max_length=1000)
