"""``govhub subscription request|approve|reject|revoke|suspend|resume|list|show``: the
subscription workflow over the api.

Policies on the command line: ``--mask FIELD=KIND`` (``name``, ``redact``, ``pseudonym``,
``month``, ``keep:3:4`` ...) and ``--filter FIELD:OP:VALUE`` (``category:eq:URBAN``,
``household_size:ge:3``, ``category:in:URBAN,RURAL``); values that read as JSON numbers or
booleans are sent as such. ``--policy FILE`` takes the whole policy as JSON instead.
"""

from __future__ import annotations

import argparse
import datetime
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from hub.apiclient import (
    ApiClient,
    CommandError,
)
from hub.apiclient import add_action as _action
from hub.apiclient import print_answer as _print

BASE = "/v1/subscriptions"
SET_OPS = ("in", "not_in")
POLICY_KEYS = ("fields", "masking", "filters", "unmasked", "rate_limit_per_s")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``subscription`` command with its actions."""
    sub = subparsers.add_parser(
        "subscription",
        help="request, approve, reject, revoke and list subscriptions",
        description="The subscription workflow (申请 → 审核 → 授权 → 撤销) through the hub's api.",
    )
    actions = sub.add_subparsers(dest="subscription_command", required=True, metavar="ACTION")

    request = _action(actions, "request", "request a subscription to a resource", run_request)
    request.add_argument("resource", help="resource code")
    request.add_argument("--purpose", required=True, help="用途")
    request.add_argument("--jurisdiction", help="region code (default: your own region)")
    request.add_argument("--days", type=int, help="duration in days (default: open-ended)")
    request.add_argument("--delivery", default="stream", choices=("stream", "service", "file"))
    _policy_arguments(request)
    request.add_argument("--unmask", help="personal fields asked for unmasked (comma-separated)")

    approve = _action(actions, "approve", "approve a request", run_approve)
    approve.add_argument("id")
    approve.add_argument("--days", type=int, help="set the duration in days")
    _policy_arguments(approve)
    approve.add_argument("--unmask", help="release personal fields from the default masks")

    for name, verb in (("reject", "reject"), ("revoke", "revoke"), ("suspend", "suspend")):
        action = _action(actions, name, f"{verb} a subscription, with the reason", run_reason)
        action.add_argument("id")
        action.add_argument("--reason", required=True)
        action.set_defaults(verb=name)

    resume = _action(actions, "resume", "resume a suspended subscription", run_resume)
    resume.add_argument("id")

    listing = _action(actions, "list", "list subscriptions", run_list)
    listing.add_argument("--scope", default="mine", choices=("mine", "to_approve", "owned", "all"))
    listing.add_argument("--status")
    listing.add_argument("--resource")
    listing.add_argument("--overdue", action="store_true", help="only requests past a deadline")

    show = _action(actions, "show", "show a subscription with its history", run_show)
    show.add_argument("id")


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fields", help="fields to deliver (comma-separated; default: all)")
    parser.add_argument("--mask", action="append", default=[], metavar="FIELD=KIND")
    parser.add_argument("--filter", action="append", default=[], metavar="FIELD:OP:VALUE")
    parser.add_argument("--rate-limit", type=int, help="records per second")
    parser.add_argument("--policy", type=Path, help="the whole policy as a JSON file")


def _path(sub_id: str, tail: str = "") -> str:
    return f"{BASE}/{urllib.parse.quote(sub_id, safe='')}{tail}"


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


# -- policy from arguments --------------------------------------------------------------------
def parse_mask(text: str) -> tuple[str, Any]:
    """``FIELD=KIND`` or ``FIELD=keep:FIRST:LAST``."""
    field, sep, kind = text.partition("=")
    if not sep or not field or not kind:
        raise CommandError(
            f"--mask {text!r}: expected FIELD=KIND, e.g. name=name or phone=keep:3:4"
        )
    if kind.startswith("keep"):
        parts = kind.split(":")
        try:
            first, last = (int(p) for p in parts[1:3]) if len(parts) == 3 else (-1, -1)
        except ValueError:
            first = last = -1
        if first < 0 or last < 0:
            raise CommandError(f"--mask {text!r}: keep needs FIRST and LAST, e.g. keep:3:4")
        return field, {"kind": "keep", "first": first, "last": last}
    return field, kind


def _scalar(text: str) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, int | float | bool) else text


def parse_filter(text: str) -> dict[str, Any]:
    """``FIELD:OP:VALUE``; for ``in``/``not_in`` VALUE is comma-separated."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts[:2]):
        raise CommandError(
            f"--filter {text!r}: expected FIELD:OP:VALUE, e.g. category:eq:URBAN or "
            "household_size:ge:3"
        )
    field, op, value = parts
    if op in SET_OPS:
        return {"field": field, "op": op, "values": [_scalar(v) for v in value.split(",")]}
    return {"field": field, "op": op, "value": _scalar(value)}


def policy_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The policy the arguments describe (``None`` when they describe none)."""
    if args.policy is not None:
        try:
            document = orjson.loads(args.policy.read_bytes())
        except OSError as exc:
            raise CommandError(f"cannot read {args.policy}: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise CommandError(f"{args.policy} is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise CommandError(f"{args.policy} must hold a JSON object")
        return document
    policy: dict[str, Any] = {}
    if args.fields is not None:
        policy["fields"] = _names(args.fields)
    if args.mask:
        policy["masking"] = dict(parse_mask(m) for m in args.mask)
    if args.filter:
        policy["filters"] = [parse_filter(f) for f in args.filter]
    if args.unmask is not None:
        policy["unmasked"] = _names(args.unmask)
    if args.rate_limit is not None:
        policy["rate_limit_per_s"] = args.rate_limit
    return policy or None


# -- text output ------------------------------------------------------------------------------
def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    at = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return at.strftime("%Y-%m-%d %H:%M UTC")


def describe(sub: dict[str, Any]) -> str:
    lines = [
        f"{sub['id']}  {sub['resource']} → {sub['subscriber']}  [{sub['effective_status']}]",
        f"  jurisdiction {sub['jurisdiction']}, purpose {sub['purpose']}",
        f"  fields {', '.join(sub['fields']) if sub.get('fields') else 'all'}",
    ]
    masks = sub.get("effective_masking") or {}
    if masks:
        lines.append("  masked " + ", ".join(f"{k}={v}" for k, v in masks.items()))
    if sub.get("filters"):
        lines.append(f"  filters {orjson.dumps(sub['filters']).decode()}")
    if sub.get("pending_approvals"):
        due = _when(sub.get("due_ms"))
        late = " OVERDUE" if sub.get("overdue") else ""
        lines.append(f"  waiting for {', '.join(sub['pending_approvals'])} (due {due}){late}")
    if sub.get("expires_at_ms"):
        lines.append(f"  expires {_when(sub['expires_at_ms'])}")
    if sub.get("reason"):
        lines.append(f"  reason {sub['reason']}")
    for event in sub.get("history") or ():
        why = f" — {event['reason']}" if event.get("reason") else ""
        lines.append(f"  {_when(event['at_ms'])}  {event['action']:<10} by {event['actor']}{why}")
    return "\n".join(lines)


# -- actions ----------------------------------------------------------------------------------
def run_request(args: argparse.Namespace, client: ApiClient) -> int:
    body: dict[str, Any] = {
        "resource": args.resource,
        "purpose": args.purpose,
        "delivery": args.delivery,
        **(policy_from_args(args) or {}),
    }
    if args.jurisdiction:
        body["jurisdiction"] = args.jurisdiction
    if args.days is not None:
        body["duration_days"] = args.days
    return _print(args, client.call("POST", BASE, body), describe)


def run_approve(args: argparse.Namespace, client: ApiClient) -> int:
    body: dict[str, Any] = {}
    policy = policy_from_args(args)
    if policy is not None and args.policy is None:
        # Options change the requested policy; the api replaces the policy whole.
        current = client.call("GET", _path(args.id))
        policy = {k: current[k] for k in POLICY_KEYS if current.get(k) not in (None, [], {})} | (
            policy
        )
    if policy is not None:
        body["policy"] = policy
    if args.days is not None:
        body["duration_days"] = args.days
    return _print(args, client.call("POST", _path(args.id, "/approve"), body), describe)


def run_reason(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("POST", _path(args.id, f"/{args.verb}"), {"reason": args.reason})
    return _print(args, answer, describe)


def run_resume(args: argparse.Namespace, client: ApiClient) -> int:
    return _print(args, client.call("POST", _path(args.id, "/resume"), {}), describe)


def run_list(args: argparse.Namespace, client: ApiClient) -> int:
    params = {"scope": args.scope}
    for key in ("status", "resource"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.overdue:
        params["overdue"] = "true"
    answer = client.call("GET", f"{BASE}?{urllib.parse.urlencode(params)}")

    def text(a: Any) -> str:
        rows = [
            f"{s['id']:<22} {s['resource']:<12} {s['subscriber']:<20} {s['jurisdiction']} "
            f"{s['effective_status']:<9}{' OVERDUE' if s['overdue'] else ''}"
            for s in a["subscriptions"]
        ]
        return "\n".join([*rows, f"{a['count']} subscriptions"])

    return _print(args, answer, text)


def run_show(args: argparse.Namespace, client: ApiClient) -> int:
    return _print(args, client.call("GET", _path(args.id)), describe)
