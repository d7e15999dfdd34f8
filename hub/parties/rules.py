"""Rules every party write must pass, as pure functions over the current party map.

Each raises :class:`PartyError` with the HTTP status and a message that says what is wrong
and how to fix it; the endpoints and the bootstrap command share them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from hub.crypto.errors import KeyReleaseError
from hub.crypto.keyrelease import load_public_key
from hub.parties.model import (
    Party,
    PartyKind,
    PublicKey,
    Role,
    check_roles,
    hash_token,
    new_token,
)
from hub.regions import is_within

MAX_PUBLIC_KEYS = 32
DAY_MS = 86_400_000
DEPARTMENT_ROLES = frozenset({Role.PUBLISHER, Role.APPROVER})


class PartyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_placement(party: Party, parties: Mapping[str, Party]) -> None:
    """Parent and department exist, the region nests in the parent's, no cycles."""
    if party.parent is not None:
        if party.parent == party.id:
            raise PartyError(400, "a party cannot be its own parent")
        parent = parties.get(party.parent)
        if parent is None:
            raise PartyError(400, f"parent {party.parent} does not exist")
        if not is_within(party.region_code, parent.region_code):
            raise PartyError(
                400,
                f"region code {party.region_code} does not extend the region "
                f"{parent.region_code} of parent {parent.id}: a child's code must extend "
                "its parent's (a community's its street's)",
            )
        if (
            party.kind is PartyKind.UNIT
            and parent.kind is PartyKind.UNIT
            and party.level <= parent.level
        ):
            raise PartyError(
                400,
                f"unit {party.id} ({party.level.name.lower()}) must sit below its parent "
                f"unit {parent.id} ({parent.level.name.lower()})",
            )
        seen = {party.id}
        node: Party | None = parent
        while node is not None:
            if node.id in seen:
                raise PartyError(400, f"parent {party.parent} would make a cycle")
            seen.add(node.id)
            node = parties.get(node.parent) if node.parent else None
    if party.department is not None and party.department != party.id:
        department = parties.get(party.department)
        if department is None or department.kind is not PartyKind.DEPARTMENT:
            raise PartyError(400, f"department {party.department} is not a department party")


def check_role_set(party: Party, roles: tuple[Role, ...]) -> tuple[Role, ...]:
    """三员 separation and department roles only for parties acting for a department."""
    try:
        roles = check_roles(roles)
    except ValueError as exc:
        raise PartyError(409, str(exc)) from None
    if DEPARTMENT_ROLES.intersection(roles) and party.acts_for is None:
        raise PartyError(
            400,
            f"publisher and approver act for a department: party {party.id} is a unit with "
            "no 'department'",
        )
    return roles


def set_roles(actor: Party, target: Party, roles: tuple[Role, ...]) -> Party:
    """A system admin sets another party's roles; nobody changes their own."""
    if actor.id == target.id:
        raise PartyError(
            403,
            f"role escalation refused: party {actor.id} cannot change its own roles; "
            "another system admin must",
        )
    checked = check_role_set(target, roles)
    return target.model_copy(update={"roles": checked, "version": target.version + 1})


def check_mtls_subject(party: Party, parties: Mapping[str, Party]) -> None:
    if party.mtls_subject is None:
        return
    for other in parties.values():
        if other.id != party.id and other.mtls_subject == party.mtls_subject:
            raise PartyError(409, f"mTLS subject already belongs to party {other.id}")


def build_party(fields: Mapping[str, Any], parties: Mapping[str, Party]) -> Party:
    """A new party from validated request fields, after every rule."""
    if fields["id"] in parties:
        raise PartyError(409, f"party {fields['id']} already exists")
    try:
        check_roles(tuple(fields.get("roles", ())))
    except ValueError as exc:
        raise PartyError(409, str(exc)) from None
    try:
        party = Party.model_validate(dict(fields))
    except ValidationError as exc:
        raise PartyError(400, _validation_message(exc)) from None
    check_placement(party, parties)
    check_role_set(party, party.roles)
    check_mtls_subject(party, parties)
    return party


def issue_token(party: Party, ttl_days: int, at_ms: int) -> tuple[Party, str]:
    """A new token for ``party`` (the old one stops working at once); returns it in clear
    once — only its scrypt hash is kept."""
    token = new_token(party.id)
    updated = party.model_copy(
        update={
            "token_hash": hash_token(token),
            "token_expires_at_ms": at_ms + ttl_days * DAY_MS,
            "version": party.version + 1,
        }
    )
    return updated, token


def decode_public_key(kem: str, key_b64: str, at_ms: int) -> PublicKey:
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise PartyError(400, "public key must be standard base64") from None
    try:
        load_public_key(raw, kem)
    except KeyReleaseError as exc:
        raise PartyError(400, f"not a usable {kem} public key: {exc}") from None
    return PublicKey(kem=kem, key=base64.b64encode(raw).decode(), added_at_ms=at_ms)


def add_public_key(party: Party, key: PublicKey) -> Party:
    """Append ``key`` as the newest; older keys stay for frames already written."""
    if any(k.kem == key.kem and k.key == key.key for k in party.public_keys):
        raise PartyError(409, f"party {party.id} already has this public key")
    if len(party.public_keys) >= MAX_PUBLIC_KEYS:
        raise PartyError(409, f"party {party.id} already has {MAX_PUBLIC_KEYS} public keys")
    return party.model_copy(
        update={"public_keys": (*party.public_keys, key), "version": party.version + 1}
    )


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)
