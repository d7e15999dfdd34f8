"""The ACL set of a hub, computed from its configuration and control state (pure).

Who may do what (design §9; ``docs/operations.md`` "Kafka security")::

    conn-<dept>          write govhub.src.<dept>.* and govhub.dlq.<dept>; its checkpoints;
                         read the catalogue, schemas and parties it admits records against;
                         write audit (failed sign-ins at the HTTP source)
    govhub-router        read govhub.src.*; write the delivery, key, audit and dead-letter
                         topics; its transactional-id prefix and consumer group
    govhub-gateway       read the delivery topic; its consumer groups; the gateway directory;
                         write audit (failed sign-ins)
    govhub-api           read every control topic, write the control and audit topics,
                         create the hub's topics
    govhub-audit         read the audit topic, write the audit chain under its transactional id
    govhub-dataservice   read govhub.src.* (the materialised views), write audit, read,
                         write and create _govhub.dataservice-usage (shared call counts)

Hub roles also read the five control tables every role materialises (design §4) and may
describe every hub topic (a role checks at start that the hub's topics exist). Nobody
else — no subscriber, no connector — reads the delivery, key, subscription or audit
topics: with ``allow.everyone.if.no.acl.found=false`` a missing ACL is a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hub.catalogue.model import Resource
from hub.config import HubConfig
from hub.dataservice.usage import usage_topic
from hub.kafkasec.model import (
    CLUSTER_NAME,
    AclEntry,
    Operation,
    Pattern,
    Principals,
    ResourceKind,
    principal,
    user_of,
)
from hub.parties.model import Party, PartyKind, PartyStatus
from hub.topics import Topics, check_name_part

R, W, C, D = Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE
# Consumer groups of the hub's own helper readers (control tables, watermarks, audit and
# console readers) all start with this; they assign partitions and never commit.
HELPER_GROUP_PREFIX = "govhub-"
TABLE_GROUP_PREFIXES = ("govhub-table-", "govhub-watermarks-")


@dataclass(frozen=True, slots=True)
class HubKafkaNames:
    """The names a hub uses on Kafka beyond its topics: groups and transactional ids."""

    topics: Topics
    router_group: str
    router_transactional_id: str
    gateway_group: str
    notary_group: str
    notary_transactional_id: str

    @classmethod
    def from_config(cls, config: HubConfig) -> HubKafkaNames:
        prefix = config.kafka.topic_prefix
        return cls(
            topics=Topics(prefix),
            router_group=config.router.group_id,
            router_transactional_id=config.router.transactional_id,
            gateway_group=config.gateway.group_id,
            # as hub.runtime names the audit notary's
            notary_group=f"{prefix}govhub-audit-notary",
            notary_transactional_id=f"{prefix}govhub-audit-notary",
        )

    @property
    def router_transactional_prefix(self) -> str:
        """Router instances number their transactional ids (``govhub-router-0``, ``-1``...):
        the ACL covers the id without its trailing number."""
        return re.sub(r"\d+$", "", self.router_transactional_id) or self.router_transactional_id


@dataclass(frozen=True, slots=True)
class AclPlan:
    """What the cluster should hold for this hub: SCRAM users and their ACL entries."""

    users: tuple[str, ...]
    entries: frozenset[AclEntry]

    def entries_of(self, user: str) -> list[AclEntry]:
        return sorted(e for e in self.entries if e.principal == principal(user))

    def allows(self, user: str, kind: ResourceKind, name: str, operation: Operation) -> bool:
        """Would the plan let ``user`` do ``operation`` on resource ``name``? Kafka's rules:
        a literal entry matches its name, a prefixed one every name it begins, and READ or
        WRITE imply DESCRIBE (``docs/operations.md`` "Kafka security" lists the plan)."""
        wanted = {operation, R, W} if operation is D else {operation}
        who = principal(user)
        return any(
            e.principal == who
            and e.kind is kind
            and e.operation in wanted
            and (e.name == name if e.pattern is Pattern.LITERAL else name.startswith(e.name))
            for e in self.entries
        )


def connector_departments(
    parties: Iterable[Party], resources: Iterable[Resource], extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """Departments that get a connector principal: those owning a catalogue resource,
    registered as a department or named in ``extra``, except departments whose party is
    suspended."""
    departments = {r.department for r in resources} | set(extra)
    suspended = set()
    for party in parties:
        if party.kind is not PartyKind.DEPARTMENT:
            continue
        if party.status is PartyStatus.SUSPENDED:
            suspended.add(party.id)
        elif party.acts_for is not None:
            departments.add(party.acts_for)
    return tuple(sorted(check_name_part("department", d) for d in departments - suspended))


def _topic(user: str, name: str, *ops: Operation, prefixed: bool = False) -> Iterator[AclEntry]:
    pattern = Pattern.PREFIXED if prefixed else Pattern.LITERAL
    for op in ops:
        yield AclEntry(principal(user), ResourceKind.TOPIC, pattern, name, op)


def _group(user: str, name: str, *, prefixed: bool) -> AclEntry:
    pattern = Pattern.PREFIXED if prefixed else Pattern.LITERAL
    return AclEntry(principal(user), ResourceKind.GROUP, pattern, name, R)


def _transactional_id(user: str, name: str, *, prefixed: bool) -> Iterator[AclEntry]:
    pattern = Pattern.PREFIXED if prefixed else Pattern.LITERAL
    for op in (W, D):
        yield AclEntry(principal(user), ResourceKind.TRANSACTIONAL_ID, pattern, name, op)


def _idempotent(user: str) -> AclEntry:
    return AclEntry(
        principal(user), ResourceKind.CLUSTER, Pattern.LITERAL, CLUSTER_NAME,
        Operation.IDEMPOTENT_WRITE,
    )  # fmt: skip


def _hub_role(user: str, t: Topics) -> Iterator[AclEntry]:
    """What every hub role needs: the control tables, the hub's topics' metadata, the
    helper readers' groups, idempotent writes."""
    for table in (t.schemas, t.catalogue, t.parties, t.subscriptions, t.keys):
        yield from _topic(user, table, R)
    yield from _topic(user, f"{t.prefix}_govhub.", D, prefixed=True)
    yield from _topic(user, t.delivery, D)
    yield _group(user, HELPER_GROUP_PREFIX, prefixed=True)
    if t.prefix:
        yield _group(user, f"{t.prefix}{HELPER_GROUP_PREFIX}", prefixed=True)
    yield _idempotent(user)


def role_entries(names: HubKafkaNames, p: Principals) -> Iterator[AclEntry]:
    t = names.topics
    src, dlq = f"{t.prefix}govhub.src.", f"{t.prefix}govhub.dlq."

    yield from _hub_role(p.api, t)
    yield from _topic(p.api, f"{t.prefix}_govhub.", R, C, prefixed=True)
    yield from _topic(p.api, f"{t.prefix}govhub.", D, C, prefixed=True)
    for table in (t.schemas, t.catalogue, t.parties, t.subscriptions, t.keys, t.audit):
        yield from _topic(p.api, table, W)

    yield from _hub_role(p.router, t)
    yield from _topic(p.router, src, R, prefixed=True)
    yield from _topic(p.router, dlq, W, prefixed=True)
    # schemas: the router registers the Avro schema of each view it compiles
    for topic in (t.delivery, t.keys, t.audit, t.schemas):
        yield from _topic(p.router, topic, W)
    yield from _transactional_id(p.router, names.router_transactional_prefix, prefixed=True)
    yield _group(p.router, names.router_group, prefixed=False)

    yield from _hub_role(p.gateway, t)
    yield from _topic(p.gateway, t.delivery, R)
    yield from _topic(p.gateway, t.keys, W)  # its resume-ticket key, made once
    yield from _topic(p.gateway, t.audit, W)  # failed sign-ins at the gateway
    # The gateway directory is the gateways' own topic: they create it on first start.
    yield from _topic(p.gateway, f"{t.prefix}_govhub.gateways", R, W, C)
    yield _group(p.gateway, names.gateway_group, prefixed=True)

    yield from _hub_role(p.audit, t)
    yield from _topic(p.audit, t.audit, R)
    yield from _topic(p.audit, t.audit_chain, R, W)
    yield from _topic(p.audit, t.keys, W)  # the notary's signing key, made once
    yield from _transactional_id(p.audit, names.notary_transactional_id, prefixed=False)
    yield _group(p.audit, names.notary_group, prefixed=True)

    yield from _hub_role(p.data_service, t)
    yield from _topic(p.data_service, src, R, prefixed=True)
    yield from _topic(p.data_service, t.audit, W)
    # The nodes' shared call counts (daily quotas): their own topic, made on first start.
    yield from _topic(p.data_service, usage_topic(t.prefix), R, W, C)


def connector_entries(department: str, t: Topics, p: Principals) -> Iterator[AclEntry]:
    """A department's connector writes its own source and dead-letter topics only (and
    audit events: sign-ins its HTTP source refused)."""
    user = p.connector(department)
    yield from _topic(user, f"{t.source(department, '')}", W, D, prefixed=True)
    yield from _topic(user, t.dlq(department), W, D)
    yield from _topic(user, t.audit, W)
    yield from _topic(user, t.connect_offsets, R, W)
    for table in (t.catalogue, t.schemas, t.parties):
        yield from _topic(user, table, R)
    for group in TABLE_GROUP_PREFIXES:
        yield _group(user, group, prefixed=True)
    yield _idempotent(user)


def acl_plan(names: HubKafkaNames, departments: Iterable[str]) -> AclPlan:
    """The users and ACL entries of a hub whose control state lists ``departments``."""
    p = Principals(names.topics.prefix)
    departments = sorted(set(departments))
    entries = set(role_entries(names, p))
    for department in departments:
        entries.update(connector_entries(department, names.topics, p))
    users = (*p.roles, *(p.connector(d) for d in departments))
    return AclPlan(users=users, entries=frozenset(entries))


@dataclass(frozen=True, slots=True)
class AclChanges:
    """How the cluster differs from the plan, for the users this hub manages only."""

    create: tuple[AclEntry, ...]
    delete: tuple[AclEntry, ...]
    unchanged: int
    create_users: tuple[str, ...]
    stale_users: tuple[str, ...]  # managed users the plan no longer has (left, not deleted)

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete or self.create_users)


def diff(
    plan: AclPlan,
    current: Iterable[AclEntry],
    current_users: Iterable[str],
    principals: Principals,
) -> AclChanges:
    """Entries to create and to delete so the cluster matches ``plan``; entries of
    principals this hub does not manage are never touched."""
    managed = set()
    for entry in current:
        user = user_of(entry.principal)
        if user is not None and principals.is_managed(user):
            managed.add(entry)
    users = set(current_users)
    return AclChanges(
        create=tuple(sorted(plan.entries - managed)),
        delete=tuple(sorted(managed - plan.entries)),
        unchanged=len(managed & plan.entries),
        create_users=tuple(u for u in plan.users if u not in users),
        stale_users=tuple(
            sorted(u for u in users if principals.is_managed(u) and u not in plan.users)
        ),
    )
