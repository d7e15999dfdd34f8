"""Reading and changing a cluster's ACLs and SCRAM users with an admin principal.

``apply_changes`` is idempotent: it creates what is missing and deletes the stale entries
of the principals the hub manages; run again, it finds nothing to do.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from hub.kafkasec.model import AclEntry, Operation, Pattern, ResourceKind, user_of
from hub.kafkasec.plan import AclChanges

log = logging.getLogger(__name__)

SCRAM_ITERATIONS = 8192
TIMEOUT_S = 30.0

_KINDS = {
    ResourceKind.TOPIC: ResourceType.TOPIC,
    ResourceKind.GROUP: ResourceType.GROUP,
    ResourceKind.TRANSACTIONAL_ID: ResourceType.TRANSACTIONAL_ID,
    ResourceKind.CLUSTER: ResourceType.BROKER,  # librdkafka's name for the CLUSTER resource
}
_PATTERNS = {
    Pattern.LITERAL: ResourcePatternType.LITERAL,
    Pattern.PREFIXED: ResourcePatternType.PREFIXED,
}
_OPERATIONS = {
    Operation.READ: AclOperation.READ,
    Operation.WRITE: AclOperation.WRITE,
    Operation.CREATE: AclOperation.CREATE,
    Operation.DESCRIBE: AclOperation.DESCRIBE,
    Operation.IDEMPOTENT_WRITE: AclOperation.IDEMPOTENT_WRITE,
}


class KafkaSecurityError(Exception):
    """The cluster refused or failed an ACL or SCRAM change; the message says which."""


def to_binding(entry: AclEntry) -> AclBinding:
    return AclBinding(
        _KINDS[entry.kind], entry.name, _PATTERNS[entry.pattern], entry.principal, "*",
        _OPERATIONS[entry.operation], AclPermissionType.ALLOW,
    )  # fmt: skip


def _invert(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return {v: k for k, v in mapping.items()}


def from_binding(binding: AclBinding) -> AclEntry | None:
    """The entry of an ALLOW-for-any-host binding the hub could have written, else None."""
    kind = _invert(_KINDS).get(binding.restype)
    pattern = _invert(_PATTERNS).get(binding.resource_pattern_type)
    operation = _invert(_OPERATIONS).get(binding.operation)
    if (
        kind is None
        or pattern is None
        or operation is None
        or binding.host != "*"
        or binding.permission_type != AclPermissionType.ALLOW
    ):
        return None
    return AclEntry(binding.principal, kind, pattern, binding.name, operation)


def _error(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else str(exc)


@dataclass
class ClusterAcls:
    """The cluster's ACL bindings and SCRAM users as the hub sees them."""

    entries: list[AclEntry]
    foreign: list[AclBinding]  # bindings of managed users the hub never writes (e.g. DENY)
    users: list[str]


def read_cluster(admin: AdminClient, is_managed: Callable[[str], bool]) -> ClusterAcls:
    """Every ACL binding and SCRAM user (needs an admin principal: DESCRIBE on CLUSTER)."""
    any_string: Any = None  # a filter's None matches any name, principal and host
    match_all = AclBindingFilter(
        ResourceType.ANY, any_string, ResourcePatternType.ANY, any_string, any_string,
        AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip
    client: Any = admin  # describe_user_scram_credentials(None) returns one future
    try:
        bindings = client.describe_acls(match_all, request_timeout=TIMEOUT_S).result()
        described = client.describe_user_scram_credentials(request_timeout=TIMEOUT_S).result()
    except KafkaException as exc:
        raise KafkaSecurityError(
            f"cannot read the cluster's ACLs and SCRAM users: {_error(exc)} (run as an admin "
            "principal of a cluster with an authorizer, e.g. `govhub kafka up --secure`)"
        ) from exc
    entries, foreign = [], []
    for binding in bindings:
        entry = from_binding(binding)
        if entry is not None:
            entries.append(entry)
        else:
            user = user_of(binding.principal)
            if user is not None and is_managed(user):
                foreign.append(binding)
    return ClusterAcls(entries, foreign, sorted(described))


@dataclass
class AppliedChanges:
    created: int = 0
    deleted: int = 0
    users: dict[str, str] = field(default_factory=dict)  # new user -> its random password
    passwords_set: list[str] = field(default_factory=list)  # users given a password


def create_users(admin: AdminClient, users: Iterable[str]) -> dict[str, str]:
    """New SCRAM-SHA-512 users with random passwords; returns user -> password."""
    passwords = {user: secrets.token_urlsafe(24) for user in users}
    if not passwords:
        return {}
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [UserScramCredentialUpsertion(u, info, pw.encode()) for u, pw in passwords.items()]
    client: Any = admin  # an upsertion is an alteration; the stub's list is invariant
    futures = client.alter_user_scram_credentials(upserts, request_timeout=TIMEOUT_S)
    for user, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            raise KafkaSecurityError(f"cannot create SCRAM user {user}: {_error(exc)}") from exc
    return passwords


def set_password(admin: AdminClient, user: str, password: str) -> None:
    """Create or reset one SCRAM-SHA-512 user."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())
    client: Any = admin
    try:
        client.alter_user_scram_credentials([upsert], request_timeout=TIMEOUT_S)[user].result()
    except KafkaException as exc:
        raise KafkaSecurityError(f"cannot set the password of {user}: {_error(exc)}") from exc


def apply_changes(
    admin: AdminClient, changes: AclChanges, passwords: Mapping[str, str] | None = None
) -> AppliedChanges:
    """Create the missing users and entries, then delete the stale ones.

    ``passwords`` (user -> password) are set for those users, created or not, so a
    deployment can hand the same secrets to its roles; other new users get random ones.
    """
    passwords = dict(passwords or {})
    for user, password in sorted(passwords.items()):
        set_password(admin, user, password)
    fresh = [u for u in changes.create_users if u not in passwords]
    applied = AppliedChanges(users=create_users(admin, fresh), passwords_set=sorted(passwords))
    if changes.create:
        futures = admin.create_acls(
            [to_binding(e) for e in changes.create], request_timeout=TIMEOUT_S
        )
        for binding, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                raise KafkaSecurityError(f"cannot create ACL {binding}: {_error(exc)}") from exc
        applied.created = len(changes.create)
    filters = [_exact_filter(to_binding(e)) for e in changes.delete]
    if filters:
        deleted = admin.delete_acls(filters, request_timeout=TIMEOUT_S)
        for binding_filter, future in deleted.items():
            try:
                applied.deleted += len(future.result())
            except KafkaException as exc:
                raise KafkaSecurityError(
                    f"cannot delete ACL {binding_filter}: {_error(exc)}"
                ) from exc
    log.info(
        "kafka acls applied",
        extra={
            "acls_created": applied.created,
            "acls_deleted": applied.deleted,
            "users_created": sorted(applied.users),
        },
    )
    return applied


def _exact_filter(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        binding.restype, binding.name, binding.resource_pattern_type, binding.principal,
        binding.host, binding.operation, binding.permission_type,
    )  # fmt: skip


def write_client_file(directory: Path, user: str, base: Mapping[str, str], password: str) -> Path:
    """``<directory>/<user>.properties``: the librdkafka settings of one principal, 0600."""
    from hub.localkafka.security import principal_settings, write_secret

    settings = principal_settings(dict(base), user, password)
    path = directory / f"{user}.properties"
    write_secret(path, "".join(f"{k}={v}\n" for k, v in settings.items()))
    return path
