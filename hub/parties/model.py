"""Parties: departments and grassroots units, with their credentials and keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.regions import Level, level_of, validate_region_code

# scrypt parameters: slow enough to make a stolen hash expensive to brute-force.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


class PartyKind(StrEnum):
    DEPARTMENT = "department"  # 委办局
    UNIT = "unit"  # 区县, 街道/乡镇, 社区/村


class PartyStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Role(StrEnum):
    """Roles. The first three follow 三员 separation: no party holds two of them."""

    SYSTEM_ADMIN = "system_admin"  # 系统管理员: parties, configuration
    SECURITY_ADMIN = "security_admin"  # 安全保密管理员: policies, keys, 核心 approvals
    AUDITOR = "auditor"  # 安全审计员: audit, read-only
    PUBLISHER = "publisher"  # a department publishing its resources
    SUBSCRIBER = "subscriber"  # a party receiving shared data
    APPROVER = "approver"  # a department approving requests for its resources


SEPARATED_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDITOR})


class PublicKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kem: str = Field(pattern=r"^(x25519|mlkem768-x25519)$")
    key: str = Field(description="base64 of the raw public key")


class Party(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1)
    kind: PartyKind
    region_code: str
    parent: str | None = None
    status: PartyStatus = PartyStatus.ACTIVE
    token_hash: str | None = None
    public_keys: tuple[PublicKey, ...] = ()
    roles: tuple[Role, ...] = (Role.SUBSCRIBER,)

    @field_validator("region_code")
    @classmethod
    def _region(cls, v: str) -> str:
        return validate_region_code(v)

    @field_validator("roles")
    @classmethod
    def _three_person_rule(cls, v: tuple[Role, ...]) -> tuple[Role, ...]:
        held = SEPARATED_ROLES.intersection(v)
        if len(held) > 1:
            raise ValueError(
                f"三员 separation: one party cannot hold {sorted(r.value for r in held)} together"
            )
        return v

    @property
    def level(self) -> Level:
        return level_of(self.region_code)

    @property
    def is_grassroots(self) -> bool:
        """社区/村 units: personal data reaches them masked by default."""
        return self.kind is PartyKind.UNIT and self.level is Level.VILLAGE


def hash_token(token: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_token(token: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        token.encode(), salt=bytes.fromhex(salt_hex), n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_token() -> str:
    return "ghp_" + secrets.token_urlsafe(32)
