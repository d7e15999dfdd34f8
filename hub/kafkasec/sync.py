"""Bring a cluster's ACLs in line with a hub's control state (``govhub kafka acls``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from hub import kafka
from hub.catalogue.model import Resource
from hub.config import HubConfig
from hub.controlstate import CompactedTable, ControlStateError
from hub.kafkasec.apply import (
    AppliedChanges,
    KafkaSecurityError,
    apply_changes,
    read_cluster,
    write_client_file,
)
from hub.kafkasec.model import Principals, user_of
from hub.kafkasec.plan import (
    AclChanges,
    AclPlan,
    HubKafkaNames,
    acl_plan,
    connector_departments,
    diff,
)
from hub.parties.model import Party

CONNECTION_KEYS = ("security.protocol", "sasl.mechanism", "ssl.ca.location")


def _user(principal_name: str) -> str:
    return user_of(principal_name) or ""


LOAD_TIMEOUT_S = 30.0


@dataclass
class SyncResult:
    plan: AclPlan
    changes: AclChanges
    departments: tuple[str, ...]
    applied: AppliedChanges | None = None
    client_files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_departments(
    config: HubConfig, admin_settings: Mapping[str, str]
) -> tuple[tuple[str, ...], list[str]]:
    """The connector departments of the hub's control state, and notes for the operator."""
    names = HubKafkaNames.from_config(config)
    t = names.topics
    admin = kafka.admin_client(config.kafka.bootstrap_servers, admin_settings)
    existing = set(admin.list_topics(timeout=LOAD_TIMEOUT_S).topics)
    missing = [name for name in (t.parties, t.catalogue) if name not in existing]
    if missing:
        note = (
            f"control topics {missing} do not exist yet (start the api first): "
            "no department connector principals are planned"
        )
        return (), [note]
    rows: dict[str, list[dict[str, object]]] = {}
    for topic in (t.parties, t.catalogue):
        table = CompactedTable(
            config.kafka.bootstrap_servers, topic, client_config=dict(admin_settings)
        )
        try:
            table.start(LOAD_TIMEOUT_S)
            rows[topic] = table.values()
        except ControlStateError as exc:
            raise KafkaSecurityError(str(exc)) from exc
        finally:
            table.stop()
    notes: list[str] = []
    parties, resources = [], []
    for row in rows[t.parties]:
        try:
            parties.append(Party.model_validate(row))
        except ValidationError as exc:
            notes.append(f"party {row.get('id')!r} skipped: {exc.errors()[0]['msg']}")
    for row in rows[t.catalogue]:
        try:
            resources.append(Resource.model_validate(row))
        except ValidationError as exc:
            notes.append(f"resource {row.get('code')!r} skipped: {exc.errors()[0]['msg']}")
    return connector_departments(parties, resources), notes


def sync_acls(
    config: HubConfig,
    admin_settings: Mapping[str, str],
    *,
    apply: bool,
    secrets_dir: Path | None = None,
    departments: tuple[str, ...] | None = None,
    passwords: Mapping[str, str] | None = None,
) -> SyncResult:
    """Plan the hub's ACLs against the cluster; with ``apply`` make the cluster match.

    New SCRAM users get random passwords, written as client settings files (0600) into
    ``secrets_dir``; users named in ``passwords`` get (or are reset to) those instead.
    ``departments`` overrides reading them from the control state.
    """
    names = HubKafkaNames.from_config(config)
    notes: list[str] = []
    unread = False  # the control state could not be read: departments unknown, not none
    if departments is None:
        departments, notes = load_departments(config, admin_settings)
        unread = bool(notes) and not departments
    plan = acl_plan(names, departments)
    principals = Principals(names.topics.prefix)
    admin = kafka.admin_client(config.kafka.bootstrap_servers, admin_settings)
    cluster = read_cluster(admin, principals.is_managed)
    changes = diff(plan, cluster.entries, cluster.users, principals)
    result = SyncResult(plan, changes, departments, notes=notes)
    if cluster.foreign:
        notes.append(
            f"{len(cluster.foreign)} DENY or host-bound entries of hub principals were "
            "written by someone else: left as they are"
        )
    if changes.stale_users:
        notes.append(
            f"users {list(changes.stale_users)} are no longer planned: their ACLs are "
            "removed, the users are kept"
        )
    unknown = sorted(set(passwords or {}) - set(plan.users))
    if unknown:
        raise KafkaSecurityError(f"passwords given for users the plan does not have: {unknown}")
    if not apply:
        return result
    connectors = [e for e in changes.delete if principals.is_managed(_user(e.principal))]
    connectors = [e for e in connectors if _user(e.principal) not in principals.roles]
    if unread and connectors:
        raise KafkaSecurityError(
            f"the control state was not read ({notes[0]}), yet {len(connectors)} ACL entries "
            "of department connectors would be deleted: check kafka.topic_prefix and the "
            "bootstrap servers, or name the departments with --departments"
        )
    if set(changes.create_users) - set(passwords or {}) and secrets_dir is None:
        raise KafkaSecurityError("new SCRAM users need a folder for their client settings")
    result.applied = apply_changes(admin, changes, passwords)
    base = {k: v for k, v in admin_settings.items() if k in CONNECTION_KEYS}
    for user, password in result.applied.users.items():
        assert secrets_dir is not None
        result.client_files[user] = write_client_file(secrets_dir, user, base, password)
    return result
