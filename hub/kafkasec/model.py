"""Kafka principals and ACL entries as the hub manages them (plain data, no client).

Every entry is an ALLOW for any host: the hub never writes DENY entries, because with
``allow.everyone.if.no.acl.found=false`` what is not allowed is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

CLUSTER_NAME = "kafka-cluster"  # the one name of Kafka's CLUSTER resource


class ResourceKind(StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional_id"
    CLUSTER = "cluster"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    READ = "read"
    WRITE = "write"
    CREATE = "create"
    DESCRIBE = "describe"
    IDEMPOTENT_WRITE = "idempotent_write"


@dataclass(frozen=True, order=True, slots=True)
class AclEntry:
    """One ALLOW rule: ``principal`` may ``operation`` on a resource (or a name prefix)."""

    principal: str
    kind: ResourceKind
    pattern: Pattern
    name: str
    operation: Operation

    def describe(self) -> str:
        where = f"{self.name}*" if self.pattern is Pattern.PREFIXED else self.name
        return f"{self.principal} {self.operation.value} {self.kind.value} {where}"

    def to_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "resource": self.kind.value,
            "pattern": self.pattern.value,
            "name": self.name,
            "operation": self.operation.value,
        }


# SCRAM user names: what a party id or a topic prefix can hold (see hub.topics).
_USER = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


@dataclass(frozen=True, slots=True)
class Principals:
    """The SCRAM users of one hub installation; ``prefix`` is its topic prefix, so hubs
    that share a cluster under different prefixes never share (or prune) a principal."""

    prefix: str = ""

    def _user(self, name: str) -> str:
        user = f"{self.prefix}{name}"
        if not _USER.match(user):
            raise ValueError(f"{user!r} cannot be a Kafka user name")
        return user

    @property
    def api(self) -> str:
        return self._user("govhub-api")

    @property
    def router(self) -> str:
        return self._user("govhub-router")

    @property
    def gateway(self) -> str:
        return self._user("govhub-gateway")

    @property
    def audit(self) -> str:
        return self._user("govhub-audit")

    @property
    def data_service(self) -> str:
        return self._user("govhub-dataservice")

    def connector(self, department: str) -> str:
        """The principal of department ``department``'s source connectors."""
        return self._user(f"conn-{department}")

    @property
    def roles(self) -> tuple[str, ...]:
        return (self.api, self.router, self.gateway, self.audit, self.data_service)

    def is_managed(self, user: str) -> bool:
        """True for a user this hub creates: a role's, or a department connector's."""
        return user in self.roles or user.startswith(f"{self.prefix}conn-")


def principal(user: str) -> str:
    """The Kafka principal of a SCRAM user."""
    return f"User:{user}"


def user_of(principal_name: str) -> str | None:
    """The user of a ``User:`` principal, None for any other principal type."""
    kind, sep, user = principal_name.partition(":")
    return user if sep and kind == "User" else None
