"""Kafka security of a hub: its SCRAM principals and the ACLs they hold (design §9).

``acl_plan`` computes the entries from the hub's names and control state (pure);
``sync_acls`` compares them with a cluster and, asked to, makes the cluster match.
"""

from hub.kafkasec.apply import KafkaSecurityError
from hub.kafkasec.model import AclEntry, Operation, Pattern, Principals, ResourceKind
from hub.kafkasec.plan import (
    AclChanges,
    AclPlan,
    HubKafkaNames,
    acl_plan,
    connector_departments,
    diff,
)
from hub.kafkasec.sync import SyncResult, sync_acls

__all__ = [
    "AclChanges",
    "AclEntry",
    "AclPlan",
    "HubKafkaNames",
    "KafkaSecurityError",
    "Operation",
    "Pattern",
    "Principals",
    "ResourceKind",
    "SyncResult",
    "acl_plan",
    "connector_departments",
    "diff",
    "sync_acls",
]
