"""The hub's ACL plan from its names and control state, and its diff against a cluster."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from hub.catalogue.samples import load_sample
from hub.config import isolated_config, load_config
from hub.demo.world import build_members
from hub.kafkasec import (
    AclEntry,
    HubKafkaNames,
    Operation,
    Pattern,
    Principals,
    ResourceKind,
    acl_plan,
    connector_departments,
    diff,
)
from hub.kafkasec.apply import from_binding, to_binding
from hub.kafkasec.model import principal
from hub.parties.model import PartyKind, PartyStatus
from hub.topics import Topics

TOPIC, GROUP, TXN = ResourceKind.TOPIC, ResourceKind.GROUP, ResourceKind.TRANSACTIONAL_ID
R, W, D = Operation.READ, Operation.WRITE, Operation.DESCRIBE


def default_names() -> HubKafkaNames:
    return HubKafkaNames.from_config(load_config(env={"KAFKA_BOOTSTRAP_SERVERS": "x:9092"}))


@pytest.fixture
def names() -> HubKafkaNames:
    return default_names()


def test_a_connector_writes_only_its_own_departments_topics(names: HubKafkaNames) -> None:
    plan = acl_plan(names, ["mzj", "rsj"])
    mzj = Principals().connector("mzj")
    assert mzj == "conn-mzj"
    assert plan.allows(mzj, TOPIC, "govhub.src.mzj.dibao", W)
    assert plan.allows(mzj, TOPIC, "govhub.src.mzj.dibao", D)
    assert plan.allows(mzj, TOPIC, "govhub.dlq.mzj", W)
    assert not plan.allows(mzj, TOPIC, "govhub.src.rsj.dibao", W)
    assert not plan.allows(mzj, TOPIC, "govhub.dlq.rsj", W)
    # the prefix ends in a dot: a department whose name begins like another's is apart
    assert not plan.allows(mzj, TOPIC, "govhub.src.mzjx.dibao", W)
    # a connector writes; it never reads a source topic, not even its own
    assert not plan.allows(mzj, TOPIC, "govhub.src.mzj.dibao", R)
    assert plan.allows(mzj, TOPIC, "_govhub.connect-offsets", R)
    assert plan.allows(mzj, TOPIC, "_govhub.connect-offsets", W)
    assert plan.allows(mzj, ResourceKind.CLUSTER, "kafka-cluster", Operation.IDEMPOTENT_WRITE)
    assert not any(plan.allows(mzj, TXN, name, W) for name in ("govhub-router-0", "conn-mzj"))


def test_only_the_gateway_reads_the_delivery_topic(names: HubKafkaNames) -> None:
    plan = acl_plan(names, ["mzj", "rsj"])
    readers = {u for u in plan.users if plan.allows(u, TOPIC, "govhub.dlv", R)}
    assert readers == {Principals().gateway}
    writers = {u for u in plan.users if plan.allows(u, TOPIC, "govhub.dlv", W)}
    assert writers == {Principals().router}


def test_control_topics_are_read_by_hub_roles_only(names: HubKafkaNames) -> None:
    p = Principals()
    plan = acl_plan(names, ["mzj", "rsj"])
    t = names.topics
    for topic in (t.keys, t.subscriptions):
        readers = {u for u in plan.users if plan.allows(u, TOPIC, topic, R)}
        assert readers == set(p.roles), topic
    audit_readers = {u for u in plan.users if plan.allows(u, TOPIC, t.audit, R)}
    assert audit_readers == {p.api, p.audit}
    chain_writers = {u for u in plan.users if plan.allows(u, TOPIC, t.audit_chain, W)}
    assert chain_writers == {p.audit}
    # what a connector reads of the control state: catalogue, schemas, parties
    readable = {topic for topic in t.control if plan.allows(p.connector("rsj"), TOPIC, topic, R)}
    assert readable == {t.catalogue, t.schemas, t.parties, t.connect_offsets}
    # only the api changes parties and subscriptions
    for topic in (t.parties, t.subscriptions, t.catalogue):
        assert {u for u in plan.users if plan.allows(u, TOPIC, topic, W)} == {p.api}


def test_transactional_ids_and_groups(names: HubKafkaNames) -> None:
    p = Principals()
    plan = acl_plan(names, ["mzj"])
    assert names.router_transactional_prefix == "govhub-router-"
    for tid in ("govhub-router-0", "govhub-router-17"):
        assert plan.allows(p.router, TXN, tid, W)
    assert not plan.allows(p.router, TXN, "intruder-0", W)
    assert plan.allows(p.audit, TXN, "govhub-audit-notary", W)
    assert not plan.allows(p.api, TXN, "govhub-router-0", W)
    assert plan.allows(p.router, GROUP, "govhub-router", R)
    assert plan.allows(p.gateway, GROUP, "govhub-gateway-watermarks", R)
    assert not plan.allows(p.connector("mzj"), GROUP, "govhub-router", R)


def test_a_topic_prefix_scopes_topics_principals_and_ids(tmp_path: object) -> None:
    config = isolated_config("x:9092", "it7.", tmp_path)  # type: ignore[arg-type]
    names = HubKafkaNames.from_config(config)
    plan = acl_plan(names, ["mzj"])
    assert all(user.startswith("it7.") for user in plan.users)
    for entry in plan.entries:
        if entry.kind is TOPIC:
            assert entry.name.startswith("it7."), entry
    assert names.router_transactional_prefix == "it7.router"
    assert plan.allows("it7.govhub-router", TXN, "it7.router", W)
    assert plan.allows("it7.conn-mzj", TOPIC, "it7.govhub.src.mzj.dibao", W)
    assert not plan.allows("it7.conn-mzj", TOPIC, "govhub.src.mzj.dibao", W)
    # hubs under other prefixes never manage each other's users
    assert not Principals("it7.").is_managed("conn-mzj")
    assert not Principals("").is_managed("it7.conn-mzj")
    assert Principals("it7.").is_managed("it7.conn-rsj")


def test_departments_come_from_the_control_state() -> None:
    members = build_members()
    parties = [m.party for m in members.values()]
    resource = load_sample("mzj.dibao").resource
    assert connector_departments(parties, [resource]) == ("mzj", "rsj")
    # units never get a connector principal; a suspended department loses its own
    assert all(
        p.id not in connector_departments(parties, []) for p in parties if p.kind is PartyKind.UNIT
    )
    suspended = [
        p.model_copy(update={"status": PartyStatus.SUSPENDED}) if p.id == "rsj" else p
        for p in parties
    ]
    assert connector_departments(suspended, [resource]) == ("mzj",)
    assert connector_departments([], [resource]) == ("mzj",)


def test_diff_creates_missing_deletes_stale_and_leaves_others_alone(names: HubKafkaNames) -> None:
    p = Principals()
    plan = acl_plan(names, ["mzj"])
    kept = sorted(plan.entries)[:5]
    stale = AclEntry(principal(p.connector("old")), TOPIC, Pattern.PREFIXED, "govhub.src.old.", W)
    foreign = AclEntry("User:alice", TOPIC, Pattern.LITERAL, "govhub.dlv", R)
    group = AclEntry("Group:ops", TOPIC, Pattern.LITERAL, "govhub.dlv", R)
    changes = diff(plan, [*kept, stale, foreign, group], ["conn-old", "alice", p.api], p)
    assert set(changes.create) == plan.entries - set(kept)
    assert changes.delete == (stale,)
    assert changes.unchanged == len(kept)
    assert p.api not in changes.create_users and p.connector("mzj") in changes.create_users
    assert changes.stale_users == ("conn-old",)
    # once applied, the same plan finds nothing to do
    again = diff(plan, plan.entries | {foreign}, plan.users, p)
    assert again.empty and again.unchanged == len(plan.entries)


def test_entries_round_trip_through_client_bindings(names: HubKafkaNames) -> None:
    plan = acl_plan(names, ["mzj", "rsj"])
    for entry in plan.entries:
        assert from_binding(to_binding(entry)) == entry
    deny = AclBinding(
        ResourceType.TOPIC, "govhub.dlv", ResourcePatternType.LITERAL, "User:conn-mzj", "*",
        AclOperation.READ, AclPermissionType.DENY,
    )  # fmt: skip
    assert from_binding(deny) is None
    host_bound = AclBinding(
        ResourceType.TOPIC, "govhub.dlv", ResourcePatternType.LITERAL, "User:conn-mzj",
        "10.0.0.1", AclOperation.READ, AclPermissionType.ALLOW,
    )  # fmt: skip
    assert from_binding(host_bound) is None


def test_principal_names_are_checked() -> None:
    with pytest.raises(ValueError, match="cannot be a Kafka user name"):
        Principals("bad prefix ").connector("mzj")
    assert Topics("").source("mzj", "") == "govhub.src.mzj."
