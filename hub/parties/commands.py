"""``govhub party create|list|show|update|rotate-token|add-key|set-roles|suspend|resume|
data-keys|delete-data-keys|bootstrap-admin``: parties and credentials over the api
(``bootstrap-admin`` writes the first system admin straight into the control state)."""

from __future__ import annotations

import argparse
import base64
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from hub.apiclient import (
    EXIT_ERROR,
    EXIT_OK,
    ApiClient,
    CommandError,
    Handler,
)
from hub.apiclient import add_action as _action
from hub.apiclient import print_answer as _print
from hub.parties.requests import DEFAULT_TOKEN_TTL_DAYS

BASE = "/v1/parties"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``party`` command with its actions."""
    party = subparsers.add_parser(
        "party",
        help="parties, tokens, public keys and roles",
        description="Manage parties (departments and grassroots units) through the hub's api.",
    )
    actions = party.add_subparsers(dest="party_command", required=True, metavar="ACTION")

    create = _action(actions, "create", "create a party (prints its token once)", run_create)
    create.add_argument("id", help="party id: lower-case letters, digits, '_' or '-'")
    create.add_argument("--name", required=True)
    create.add_argument("--kind", required=True, choices=("department", "unit"))
    create.add_argument("--region", required=True, help="12-digit 统计用区划代码")
    create.add_argument("--parent", help="parent party id (a community's street, ...)")
    create.add_argument("--department", help="the department this party acts for")
    create.add_argument("--contact")
    create.add_argument("--roles", default="subscriber", help="comma-separated roles")
    create.add_argument("--mtls-subject", help="client certificate subject (optional mTLS)")
    create.add_argument("--token-ttl-days", type=int, default=DEFAULT_TOKEN_TTL_DAYS)

    listing = _action(actions, "list", "list the parties you may see", run_list)
    listing.add_argument("--kind", choices=("department", "unit"))
    listing.add_argument("--status", choices=("active", "suspended"))
    listing.add_argument("--parent")

    show = _action(actions, "show", "show one party", run_show)
    show.add_argument("id")

    update = _action(actions, "update", "set name, contact or mTLS subject", run_update)
    update.add_argument("id")
    update.add_argument("--name")
    update.add_argument("--contact")
    update.add_argument("--mtls-subject")

    rotate = _action(actions, "rotate-token", "issue a new token (prints it once)", run_rotate)
    rotate.add_argument("id")
    rotate.add_argument("--ttl-days", type=int, default=DEFAULT_TOKEN_TTL_DAYS)

    key = _action(actions, "add-key", "add (rotate to) a new public key", run_add_key)
    key.add_argument("id")
    key.add_argument("--kem", default="x25519", choices=("x25519", "mlkem768-x25519"))
    source = key.add_mutually_exclusive_group(required=True)
    source.add_argument("--key", help="base64 of the raw public key")
    source.add_argument("--key-file", type=Path, help="file with the raw public key bytes")
    source.add_argument(
        "--generate",
        type=Path,
        metavar="PRIVATE_KEY_FILE",
        help="generate a key pair, write the private key there (mode 0600), register the public",
    )

    roles = _action(actions, "set-roles", "set another party's roles", run_set_roles)
    roles.add_argument("id")
    roles.add_argument("roles", help="comma-separated, e.g. publisher,approver")

    for name, verb in (("suspend", "suspend"), ("resume", "resume")):
        status = _action(actions, name, f"{verb} a party", _status_runner(name))
        status.add_argument("id")
        status.add_argument("--reason")

    data_keys = _action(actions, "data-keys", "list a recipient's data keys", run_data_keys)
    data_keys.add_argument("id")

    shred = _action(
        actions,
        "delete-data-keys",
        "delete a recipient's data keys: its stored frames become unreadable (security admin)",
        run_delete_data_keys,
    )
    shred.add_argument("id")
    shred.add_argument("--reason", required=True, help="why (kept in the hub's log)")
    shred.add_argument(
        "--key-id", action="append", dest="key_ids", help="only this key id (repeatable)"
    )

    boot = actions.add_parser(
        "bootstrap-admin",
        help="create the first system admin directly in the control state (prints its token)",
        description="Create the first system admin. Needs the hub's Kafka and KEK file "
        "(same config as 'govhub serve'); refused once a system admin exists.",
    )
    boot.add_argument("--config", type=Path, default=None, help="TOML config file")
    boot.add_argument("--id", default="sysadmin")
    boot.add_argument("--name", default="系统管理员")
    boot.add_argument("--region", required=True, help="12-digit region code of the hub's owner")
    boot.add_argument("--token-ttl-days", type=int, default=DEFAULT_TOKEN_TTL_DAYS)
    boot.set_defaults(func=run_bootstrap)


def _path(party_id: str, tail: str = "") -> str:
    return f"{BASE}/{urllib.parse.quote(party_id, safe='')}{tail}"


def _roles(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def describe(party: dict[str, Any]) -> str:
    lines = [
        f"{party['id']}  {party['name']}",
        f"  kind {party['kind']}, region {party['region_code']}, status {party['status']}",
        f"  roles {', '.join(party['roles']) or '-'}; acts for {party.get('acts_for') or '-'}",
    ]
    if party.get("parent"):
        lines.append(f"  parent {party['parent']}")
    if party.get("contact"):
        lines.append(f"  contact {party['contact']}")
    keys = party.get("public_keys") or []
    lines.append(f"  public keys {len(keys)}" + (f" (newest {keys[-1]['kem']})" if keys else ""))
    return "\n".join(lines)


def _with_token(answer: dict[str, Any]) -> str:
    return f"{describe(answer['party'])}\n\ntoken (shown once, keep it secret):\n{answer['token']}"


# -- actions --------------------------------------------------------------------------------
def run_create(args: argparse.Namespace, client: ApiClient) -> int:
    body: dict[str, Any] = {
        "id": args.id,
        "name": args.name,
        "kind": args.kind,
        "region_code": args.region,
        "roles": _roles(args.roles),
        "token_ttl_days": args.token_ttl_days,
    }
    for key in ("parent", "department", "contact", "mtls_subject"):
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    return _print(args, client.call("POST", BASE, body), _with_token)


def run_list(args: argparse.Namespace, client: ApiClient) -> int:
    params = {k: v for k in ("kind", "status", "parent") if (v := getattr(args, k))}
    query = "?" + urllib.parse.urlencode(params) if params else ""
    answer = client.call("GET", BASE + query)

    def text(a: Any) -> str:
        rows = [
            f"{p['id']:<24} {p['kind']:<10} {p['region_code']} {p['status']:<9} "
            f"{','.join(p['roles'])}"
            for p in a["parties"]
        ]
        return "\n".join([*rows, f"{a['count']} parties"])

    return _print(args, answer, text)


def run_show(args: argparse.Namespace, client: ApiClient) -> int:
    return _print(args, client.call("GET", _path(args.id)), describe)


def run_update(args: argparse.Namespace, client: ApiClient) -> int:
    body = {
        k: v for k in ("name", "contact", "mtls_subject") if (v := getattr(args, k)) is not None
    }
    if not body:
        raise CommandError("nothing to update: give --name, --contact or --mtls-subject")
    return _print(args, client.call("PATCH", _path(args.id), body), describe)


def run_rotate(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("POST", _path(args.id, "/token"), {"ttl_days": args.ttl_days})
    return _print(args, answer, _with_token)


def public_key_argument(args: argparse.Namespace) -> tuple[str, bytes | None]:
    """The base64 public key from ``--key``, ``--key-file`` or a new pair (``--generate``,
    then also the private key to keep)."""
    if args.key:
        return str(args.key), None
    if args.key_file:
        try:
            return base64.b64encode(args.key_file.read_bytes()).decode(), None
        except OSError as exc:
            raise CommandError(f"cannot read {args.key_file}: {exc.strerror}") from None
    from hub.crypto.keyrelease import KemSuite, generate_recipient_key

    if args.generate.exists():
        raise CommandError(f"{args.generate} exists; a private key is never overwritten")
    private, public = generate_recipient_key(KemSuite(args.kem))
    return base64.b64encode(public).decode(), private


def keep_private_key(path: Path, private: bytes) -> None:
    """Write ``private`` to a new file only its owner can read."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} exists; a private key is never overwritten") from None
    except OSError as exc:
        raise CommandError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)


def run_add_key(args: argparse.Namespace, client: ApiClient) -> int:
    public, private = public_key_argument(args)
    answer = client.call("POST", _path(args.id, "/keys"), {"kem": args.kem, "key": public})
    if private is not None:
        # Only once the hub holds the public half: a failed call leaves no stray key file.
        keep_private_key(args.generate, private)
    return _print(args, answer, describe)


def run_set_roles(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("PUT", _path(args.id, "/roles"), {"roles": _roles(args.roles)})
    return _print(args, answer, describe)


def _status_runner(action: str) -> Handler:
    def run(args: argparse.Namespace, client: ApiClient) -> int:
        body = {"reason": args.reason} if args.reason else {}
        return _print(args, client.call("POST", _path(args.id, f"/{action}"), body), describe)

    run.__name__ = f"run_{action}"
    return run


def run_data_keys(args: argparse.Namespace, client: ApiClient) -> int:
    def text(answer: Any) -> str:
        rows = [
            f"{k['key_id']}  {k['suite']:<12} created {k['created_at_ms']}  "
            f"not after {k['not_after_ms']}"
            for k in answer["keys"]
        ]
        return "\n".join([*rows, f"{answer['count']} data keys of {answer['party']}"])

    return _print(args, client.call("GET", _path(args.id, "/data-keys")), text)


def run_delete_data_keys(args: argparse.Namespace, client: ApiClient) -> int:
    body: dict[str, Any] = {"reason": args.reason}
    if args.key_ids:
        body["key_ids"] = args.key_ids
    answer = client.call("POST", _path(args.id, "/data-keys/delete"), body)
    return _print(args, answer, lambda a: f"deleted {a['count']} data keys of {a['party']}")


def run_bootstrap(args: argparse.Namespace) -> int:
    from hub.config import ConfigError, load_config
    from hub.controlstate import ControlStateError
    from hub.crypto.errors import CryptoError
    from hub.parties.bootstrap import bootstrap_admin
    from hub.parties.rules import PartyError

    try:
        config = load_config(args.config)
        party, token = bootstrap_admin(config, args.id, args.name, args.region, args.token_ttl_days)
    except (ConfigError, ControlStateError, CryptoError) as exc:
        print(f"govhub: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except PartyError as exc:
        print(f"govhub: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    print(f"system admin {party.id} created")
    print("token (shown once, keep it secret; export it as GOVHUB_TOKEN):")
    print(token)
    return EXIT_OK
