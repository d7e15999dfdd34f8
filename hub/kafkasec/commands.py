"""``govhub kafka acls [--apply] [--json]``: the hub's Kafka principals and ACLs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from hub.config import ConfigError, HubConfig, load_config
from hub.kafkasec.apply import KafkaSecurityError
from hub.kafkasec.plan import HubKafkaNames, acl_plan, connector_departments
from hub.kafkasec.strimzi import kafka_users, render_kafka_users
from hub.kafkasec.sync import SyncResult, sync_acls
from hub.localkafka.paths import kafka_state_dir
from hub.localkafka.security import security_paths
from hub.localkafka.state import load_record

EXIT_OK = 0
EXIT_PENDING = 1
EXIT_ERROR = 2
SECRETS_DIR = "kafka-principals"


def add_acls_action(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acls = actions.add_parser(
        "acls",
        help="show (and --apply) the hub's Kafka principals and ACLs",
        description="Compute the SCRAM users and ACLs of the hub from its control state "
        "and compare them with the cluster; --apply creates missing users and ACLs and "
        "deletes stale ACLs of the hub's principals. Runs as an admin principal.",
    )
    acls.add_argument("--apply", action="store_true", help="make the cluster match the plan")
    acls.add_argument("--json", action="store_true", help="print the plan and changes as JSON")
    acls.add_argument(
        "--check", action="store_true", help="exit 1 when the cluster differs from the plan"
    )
    acls.add_argument("--config", type=Path, help="hub TOML config (topic prefix, groups)")
    acls.add_argument(
        "--admin-config",
        type=Path,
        metavar="FILE",
        help="librdkafka settings of the admin principal, key=value lines (default: the "
        "local secure Kafka's security/admin-client.properties, else kafka.client_config)",
    )
    acls.add_argument(
        "--secrets-dir",
        type=Path,
        metavar="DIR",
        help=f"where new principals' client settings go (default: STATE/{SECRETS_DIR})",
    )
    acls.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="GovHub state folder (default: config)"
    )
    acls.add_argument(
        "--passwords",
        type=Path,
        metavar="FILE",
        help="user=password lines: these users get (or are reset to) these passwords",
    )
    acls.add_argument(
        "--strimzi",
        action="store_true",
        help="print the plan as Strimzi KafkaUser resources instead (no cluster access)",
    )
    acls.add_argument(
        "--cluster", default="govhub-kafka", help="with --strimzi: the Kafka resource's name"
    )
    acls.add_argument(
        "--departments",
        metavar="LIST",
        help="comma-separated departments instead of the control state's (with --strimzi: "
        "default none, the roles only)",
    )
    acls.set_defaults(func=run_acls)


def read_properties(path: Path) -> dict[str, str]:
    """``key=value`` lines; blank lines and ``#`` comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    settings = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected key=value")
        settings[key.strip()] = value.strip()
    return settings


def _config(args: argparse.Namespace) -> HubConfig:
    local = kafka_state_dir(args.state_dir) if args.state_dir else None
    try:
        return load_config(args.config)
    except ConfigError:
        record = load_record(local or kafka_state_dir())
        if record is None:
            raise
        return load_config(
            args.config, overrides={"kafka.bootstrap_servers": record.layout.bootstrap_servers}
        )


def _admin_settings(args: argparse.Namespace, config: HubConfig) -> dict[str, str]:
    if args.admin_config is not None:
        return read_properties(args.admin_config)
    state_dir = args.state_dir or config.state_dir
    local = security_paths(kafka_state_dir(state_dir)).client_properties
    if local.is_file():
        return read_properties(local)
    return dict(config.kafka.client_config)


def _departments(args: argparse.Namespace) -> tuple[str, ...] | None:
    if args.departments is None:
        return () if args.strimzi else None
    try:
        return connector_departments(
            [], [], extra=[d.strip() for d in args.departments.split(",") if d.strip()]
        )
    except ValueError as exc:
        raise ConfigError(f"--departments: {exc}") from None


def run_strimzi(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError:  # the names do not depend on the brokers' addresses
        config = load_config(args.config, overrides={"kafka.bootstrap_servers": "unused:9092"})
    plan = acl_plan(HubKafkaNames.from_config(config), _departments(args) or ())
    header = (
        "The hub's Kafka principals for the Strimzi User Operator; generated by\n"
        "`govhub kafka acls --strimzi`: regenerate, do not edit."
    )
    print(render_kafka_users(kafka_users(plan, args.cluster), header), end="")
    return EXIT_OK


def run_acls(args: argparse.Namespace) -> int:
    if args.strimzi:
        return run_strimzi(args)
    config = _config(args)
    state_dir = args.state_dir or config.state_dir
    passwords = read_properties(args.passwords) if args.passwords else None
    try:
        result = sync_acls(
            config,
            _admin_settings(args, config),
            apply=args.apply,
            secrets_dir=args.secrets_dir or state_dir / SECRETS_DIR,
            departments=_departments(args),
            passwords=passwords,
        )
    except (KafkaSecurityError, KafkaException) as exc:
        print(f"govhub: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(result_json(result) if args.json else format_result(result))
    if args.check and not args.apply and not result.changes.empty:
        return EXIT_PENDING
    return EXIT_OK


def result_document(result: SyncResult) -> dict[str, Any]:
    changes = result.changes
    document: dict[str, Any] = {
        "departments": list(result.departments),
        "users": list(result.plan.users),
        "acls": [e.to_dict() for e in sorted(result.plan.entries)],
        "changes": {
            "create_users": list(changes.create_users),
            "create": [e.to_dict() for e in changes.create],
            "delete": [e.to_dict() for e in changes.delete],
            "unchanged": changes.unchanged,
            "stale_users": list(changes.stale_users),
        },
        "applied": None,
        "notes": result.notes,
    }
    if result.applied is not None:
        document["applied"] = {
            "created": result.applied.created,
            "deleted": result.applied.deleted,
            "users_created": sorted(result.applied.users),
            "client_files": {u: str(p) for u, p in result.client_files.items()},
        }
    return document


def result_json(result: SyncResult) -> str:
    return json.dumps(result_document(result), indent=2, ensure_ascii=False)


def format_result(result: SyncResult) -> str:
    plan, changes = result.plan, result.changes
    lines = [
        f"{len(plan.users)} principals, {len(plan.entries)} ACL entries "
        f"(departments: {', '.join(result.departments) or 'none'})"
    ]
    for user in changes.create_users:
        lines.append(f"  + user {user}")
    lines += [f"  + {entry.describe()}" for entry in changes.create]
    lines += [f"  - {entry.describe()}" for entry in changes.delete]
    lines.append(
        f"{len(changes.create)} to create, {len(changes.delete)} to delete, "
        f"{changes.unchanged} in place"
    )
    lines += [f"note: {note}" for note in result.notes]
    if result.applied is None:
        if not changes.empty:
            lines.append("dry run: nothing changed; run with --apply to make these changes")
        return "\n".join(lines)
    applied = result.applied
    lines.append(f"applied: {applied.created} created, {applied.deleted} deleted")
    if applied.passwords_set:
        lines.append(f"  passwords set from --passwords: {', '.join(applied.passwords_set)}")
    for user, path in result.client_files.items():
        lines.append(f"  client settings of {user}: {path} (mode 0600)")
    return "\n".join(lines)
