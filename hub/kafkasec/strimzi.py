"""The hub's principals as Strimzi ``KafkaUser`` resources (``govhub kafka acls --strimzi``).

On Kubernetes the Strimzi User Operator owns SCRAM users and ACLs: it creates each user's
password in a Secret of the user's name and keeps the ACLs as listed here, so the plan is
rendered once and applied with ``kubectl``. ``deploy/k8s/base/kafka-users.yaml`` is this
output for the roles (a test keeps the two equal).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import yaml

from hub.kafkasec.model import AclEntry, Operation, Pattern, ResourceKind
from hub.kafkasec.plan import AclPlan

_RESOURCE = {
    ResourceKind.TOPIC: "topic",
    ResourceKind.GROUP: "group",
    ResourceKind.TRANSACTIONAL_ID: "transactionalId",
    ResourceKind.CLUSTER: "cluster",
}
_PATTERN = {Pattern.LITERAL: "literal", Pattern.PREFIXED: "prefix"}
_OPERATION = {
    Operation.READ: "Read",
    Operation.WRITE: "Write",
    Operation.CREATE: "Create",
    Operation.DESCRIBE: "Describe",
    Operation.IDEMPOTENT_WRITE: "IdempotentWrite",
}
_ORDER = list(_OPERATION.values())


def _acls(entries: list[AclEntry]) -> list[dict[str, Any]]:
    """One rule per resource, with all of its operations."""
    by_resource: dict[tuple[ResourceKind, Pattern, str], set[str]] = defaultdict(set)
    for entry in entries:
        by_resource[(entry.kind, entry.pattern, entry.name)].add(_OPERATION[entry.operation])
    rules = []
    for (kind, pattern, name), operations in sorted(by_resource.items()):
        resource: dict[str, Any] = {"type": _RESOURCE[kind]}
        if kind is not ResourceKind.CLUSTER:
            resource["name"] = name
        if pattern is Pattern.PREFIXED:  # literal is Strimzi's default
            resource["patternType"] = _PATTERN[pattern]
        # no "host": Strimzi's default, any host, as the hub's own entries
        rules.append({"resource": resource, "operations": sorted(operations, key=_ORDER.index)})
    return rules


def kafka_users(
    plan: AclPlan, cluster: str, users: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """``KafkaUser`` documents (SCRAM-SHA-512, simple authorization) of the plan's users."""
    documents = []
    for user in users if users is not None else plan.users:
        documents.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {"name": user, "labels": {"strimzi.io/cluster": cluster}},
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": _acls(plan.entries_of(user))},
                },
            }
        )
    return documents


def render_kafka_users(documents: list[dict[str, Any]], header: str = "") -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    body = str(yaml.safe_dump_all(documents, sort_keys=False, explicit_start=False))
    return ("\n".join(lines) + "\n" if lines else "") + body
