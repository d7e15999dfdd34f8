"""Parties: departments and grassroots units, with their credentials and keys.

A party is also an account: it authenticates with a bearer token (stored only as a scrypt
hash, with an expiry) or an mTLS client certificate, and holds roles. Admin accounts
(三员) are parties too, usually of the data bureau, each holding its one role.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.regions import Level, level_of, validate_region_code

# scrypt parameters: slow enough to make a stolen hash expensive to brute-force.
_SCRYPT_R, _SCRYPT_P = 8, 1
# A hash may name another cost (log2 of N) after its scheme, ``scrypt:ln=<cost>$salt$digest``:
# the cost can be raised later without invalidating the tokens hashed before, and machine
# parties that are provisioned by the thousand may be hashed cheaper. Hashes without it
# (``scrypt$salt$digest``) were made at the default cost.
DEFAULT_TOKEN_COST = 14
TOKEN_COSTS = range(10, 17)  # 1 .. 64 MiB of memory per check (r = 8)


class PartyKind(StrEnum):
    DEPARTMENT = "department"  # 委办局
    UNIT = "unit"  # 区县, 街道/乡镇, 社区/村


class PartyStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Role(StrEnum):
    """Roles. The first three follow 三员 separation: an account holding one of them holds
    no other role (:func:`check_roles`)."""

    SYSTEM_ADMIN = "system_admin"  # 系统管理员: parties, configuration
    SECURITY_ADMIN = "security_admin"  # 安全保密管理员: policies, keys, 核心 approvals
    AUDITOR = "auditor"  # 安全审计员: audit, read-only
    PUBLISHER = "publisher"  # a department publishing its resources
    SUBSCRIBER = "subscriber"  # a party receiving shared data
    APPROVER = "approver"  # a department approving requests for its resources


SEPARATED_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDITOR})
PARTY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


def check_roles(roles: tuple[Role, ...]) -> tuple[Role, ...]:
    """三员 separation: an account holding system admin, security admin or auditor holds
    that one role and no other — neither another 三员 role nor a department role (an
    approver who is also the security admin would give both approvals of a 核心 request)."""
    unique = tuple(dict.fromkeys(roles))
    held = SEPARATED_ROLES.intersection(unique)
    if len(held) > 1:
        raise ValueError(
            f"三员 separation: one party cannot hold {sorted(r.value for r in held)} together"
        )
    if held and len(unique) > 1:
        (role,) = held
        others = sorted(r.value for r in unique if r is not role)
        raise ValueError(
            f"三员 separation: a {role.value} account holds no other role (also asked: {others})"
        )
    return unique


class PublicKey(BaseModel):
    """A key-release public key. A party's keys are kept oldest first: the newest (last)
    one is used for new releases; older ones stay for frames already written."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kem: str = Field(pattern=r"^(x25519|mlkem768-x25519)$")
    key: str = Field(description="base64 of the raw public key")
    added_at_ms: int | None = None


class Party(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=PARTY_ID_PATTERN, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    kind: PartyKind
    region_code: str
    parent: str | None = None
    department: str | None = Field(
        default=None,
        pattern=PARTY_ID_PATTERN,
        description="the department this party acts for (a department acts for itself)",
    )
    contact: str | None = Field(default=None, max_length=500)
    status: PartyStatus = PartyStatus.ACTIVE
    token_hash: str | None = None
    token_expires_at_ms: int | None = None
    mtls_subject: str | None = Field(
        default=None, max_length=500, description="client certificate subject (optional mTLS)"
    )
    public_keys: tuple[PublicKey, ...] = ()
    roles: tuple[Role, ...] = (Role.SUBSCRIBER,)
    version: int = 0

    @field_validator("region_code")
    @classmethod
    def _region(cls, v: str) -> str:
        return validate_region_code(v)

    @field_validator("roles")
    @classmethod
    def _three_person_rule(cls, v: tuple[Role, ...]) -> tuple[Role, ...]:
        return check_roles(v)

    @property
    def acts_for(self) -> str | None:
        """The department whose resources this party publishes or approves."""
        if self.department is not None:
            return self.department
        return self.id if self.kind is PartyKind.DEPARTMENT else None

    def token_expired(self, at_ms: int) -> bool:
        return self.token_expires_at_ms is not None and at_ms >= self.token_expires_at_ms

    @property
    def level(self) -> Level:
        return level_of(self.region_code)

    @property
    def is_grassroots(self) -> bool:
        """社区/村 units: personal data reaches them masked by default."""
        return self.kind is PartyKind.UNIT and self.level is Level.VILLAGE


def hash_token(token: str, salt: bytes | None = None, cost: int = DEFAULT_TOKEN_COST) -> str:
    """The stored form of ``token``: scrypt with a random salt, at ``cost`` (log2 of N)."""
    if cost not in TOKEN_COSTS:
        raise ValueError(f"token hash cost must be in {TOKEN_COSTS.start}..{TOKEN_COSTS.stop - 1}")
    salt = salt or secrets.token_bytes(16)
    digest = _scrypt(token, salt, cost)
    scheme = "scrypt" if cost == DEFAULT_TOKEN_COST else f"scrypt:ln={cost}"
    return f"{scheme}${salt.hex()}${digest.hex()}"


def _scrypt(token: str, salt: bytes, cost: int) -> bytes:
    n = 2**cost
    memory = 128 * _SCRYPT_R * n + 1_048_576
    return hashlib.scrypt(token.encode(), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=memory)


def _scrypt_cost(scheme: str) -> int | None:
    if scheme == "scrypt":
        return DEFAULT_TOKEN_COST
    name, _, params = scheme.partition(":")
    key, _, value = params.partition("=")
    if name != "scrypt" or key != "ln" or not value.isdigit():
        return None
    cost = int(value)
    return cost if cost in TOKEN_COSTS else None


def verify_token(token: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    cost = _scrypt_cost(scheme)
    if cost is None:
        return False
    digest = _scrypt(token, salt, cost)
    return hmac.compare_digest(digest.hex(), digest_hex)


TOKEN_PREFIX = "ghp_"


def new_token(party_id: str | None = None) -> str:
    """A new bearer token. With ``party_id`` the token names its party
    (``ghp_<party>.<secret>``), so checking it costs one slow hash, not one per party."""
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}{party_id}.{secret}" if party_id else TOKEN_PREFIX + secret


def token_party(token: str) -> str | None:
    """The party a token names, if it names one."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    head, dot, _ = token[len(TOKEN_PREFIX) :].partition(".")
    return head if dot and head else None
