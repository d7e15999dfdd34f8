"""``govhub catalog register|list|search|show|deprecate``: the catalogue over the api."""

from __future__ import annotations

import argparse
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
from hub.catalogue.render import resource_detail, resource_table
from hub.catalogue.samples import load_sample, schemas_dir

BASE = "/v1/catalog/resources"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``catalog`` command with its actions."""
    catalog = subparsers.add_parser(
        "catalog",
        help="the resource catalogue (数据目录): register, list, search, show, deprecate",
        description="Work with the resource catalogue through the hub's api.",
    )
    actions = catalog.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")

    reg = _action(actions, "register", "register or update a resource", run_register)
    reg.add_argument("schema", nargs="?", type=Path, help="Avro schema (.avsc)")
    reg.add_argument("metadata", nargs="?", type=Path, help="catalogue entry (JSON)")
    reg.add_argument(
        "--sample", metavar="NAME", help=f"a sample resource from {schemas_dir()} (mzj.dibao)"
    )

    listing = _action(actions, "list", "list resources, filtered", run_list)
    _add_filters(listing)

    search = _action(actions, "search", "search names and descriptions (中文全文)", run_search)
    search.add_argument("query", help="words to look for, e.g. 低保 or 统一社会信用代码")
    _add_filters(search)

    show = _action(actions, "show", "show one resource with its information items", run_show)
    show.add_argument("code", help="resource code")

    deprecate = _action(actions, "deprecate", "deprecate a resource", run_deprecate)
    deprecate.add_argument("code", help="resource code")
    deprecate.add_argument("--reason", required=True, help="why (kept in the entry)")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--department", help="provider department code")
    parser.add_argument("--tag", help="personal-data tag: id_card, name, ... or 身份证号, ...")
    parser.add_argument("--classification", help="general|important|core or 一般/重要/核心")
    parser.add_argument("--share", help="unconditional|conditional|not_shared or 无条件共享/...")
    parser.add_argument("--status", help="active|deprecated")
    parser.add_argument("--limit", type=int, default=100)


# -- actions ------------------------------------------------------------------------------
def registration_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST body from ``--sample`` or from the schema and metadata files."""
    if args.sample:
        if args.schema or args.metadata:
            raise CommandError("give either --sample or SCHEMA METADATA, not both")
        try:
            sample = load_sample(args.sample)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        return {"schema": sample.schema_json, "resource": sample.resource.model_dump(mode="json")}
    if not (args.schema and args.metadata):
        raise CommandError("register needs SCHEMA.avsc and METADATA.json, or --sample NAME")
    try:
        schema = args.schema.read_text(encoding="utf-8")
        entry = orjson.loads(args.metadata.read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"{args.metadata} is not JSON: {exc}") from None
    return {"schema": schema, "resource": entry}


def run_register(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("POST", BASE, registration_body(args))
    verb = "registered" if answer.get("created") else "updated"
    return _print(args, answer, lambda a: f"{verb} {a['code']}\n\n{resource_detail(a)}")


def _query(args: argparse.Namespace, extra: dict[str, str] | None = None) -> str:
    params = {
        key: value
        for key in ("department", "tag", "classification", "share", "status")
        if (value := getattr(args, key, None))
    }
    params["limit"] = str(args.limit)
    params.update(extra or {})
    return "?" + urllib.parse.urlencode(params)


def run_list(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("GET", BASE + _query(args))
    return _print(args, answer, lambda a: f"{resource_table(a['items'])}\n{a['total']} resources")


def run_search(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("GET", BASE + _query(args, {"q": args.query}))

    def text(a: Any) -> str:
        if not a["items"]:
            return f"no resource matches {args.query!r}"
        return f"{resource_table(a['items'], scored=True)}\n{a['total']} matches"

    return _print(args, answer, text)


def run_show(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("GET", f"{BASE}/{urllib.parse.quote(args.code, safe='')}")
    return _print(args, answer, resource_detail)


def run_deprecate(args: argparse.Namespace, client: ApiClient) -> int:
    code = urllib.parse.quote(args.code, safe="")
    answer = client.call("POST", f"{BASE}/{code}/deprecate", {"reason": args.reason})
    return _print(args, answer, lambda a: f"deprecated {a['code']}: {a['deprecation']['reason']}")
