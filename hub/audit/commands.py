"""``govhub audit verify|export|events|lineage|public-key``.

``verify``, ``export`` and ``public-key`` read the audit topics from Kafka with the hub's
configuration (``--config`` / environment), or verify an export file offline (``--input``);
``events`` and ``lineage`` ask the api as an auditor (``--api-url``, ``--token``).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub import kafka
from hub.apiclient import ApiClient, add_action, print_answer
from hub.audit.query import all_rows, write_csv
from hub.audit.signing import (
    SIGNING_KEY,
    SigningKeyMissing,
    parse_public_key,
    public_bytes,
)
from hub.audit.store import export_jsonl, read_jsonl, read_log, read_topic
from hub.audit.verify import anchors_of, verify_log
from hub.config import HubConfig, load_config
from hub.topics import Topics

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="the tamper-evident audit trail: verify, export, events, lineage",
        description="Verify, export and query the hub's audit trail.",
    )
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    verify = actions.add_parser(
        "verify", help="check the hash chain and signed checkpoints; name every tampered event"
    )
    _kafka_options(verify)
    verify.add_argument("--input", type=Path, help="verify this JSON-lines export instead")
    verify.add_argument(
        "--public-key",
        help="the hub's Ed25519 public key (hex or base64, or @FILE); default: the one "
        "published in the keys topic (or in the export)",
    )
    verify.add_argument(
        "--since",
        type=Path,
        help="an earlier `verify --json` report: its signed heads must still be on the chain "
        "(detects the newest events cut off together with their links)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=_guard(run_verify))

    export = actions.add_parser("export", help="export the trail (jsonl: for verify; csv: rows)")
    _kafka_options(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(func=_guard(run_export))

    key = actions.add_parser("public-key", help="print the hub's audit signing public key")
    _kafka_options(key)
    key.set_defaults(func=_guard(run_public_key))

    events = add_action(actions, "events", "audit events, filtered (auditor)", run_events)
    for name in ("recipient", "resource", "record-id", "from", "to", "kind"):
        events.add_argument(f"--{name}")
    events.add_argument("--offset", type=int, default=0)
    events.add_argument("--limit", type=int, default=100)

    lineage = add_action(actions, "lineage", "every delivery of one record (auditor)", run_lineage)
    lineage.add_argument("record_id")


def _kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    parser.add_argument("--audit-topic", help="events topic (default: the hub's)")
    parser.add_argument("--chain-topic", help="chain topic (default: the hub's)")


class _Failure(Exception):
    pass


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (_Failure, SigningKeyMissing, LookupError, TimeoutError, OSError) as exc:
            print(f"govhub: error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return run


def _config(args: argparse.Namespace) -> tuple[HubConfig, Topics, str, str]:
    config = load_config(args.config)
    topics = Topics(config.kafka.topic_prefix)
    return (
        config,
        topics,
        args.audit_topic or topics.audit,
        args.chain_topic or topics.audit_chain,
    )


def published_key(config: HubConfig, topics: Topics) -> Ed25519PublicKey:
    """The public key in the keys topic (the last record under its key wins)."""
    found: dict[str, Any] | None = None
    for _, _, value in _keyed(config, topics.keys):
        found = value
    if found is None:
        raise SigningKeyMissing(
            "no audit signing key published yet: start the notary (govhub serve --roles audit)"
        )
    return parse_public_key(str(found["public"]))


def _keyed(config: HubConfig, topic: str) -> Iterator[tuple[int, int, Any]]:
    consumer = kafka.consumer(
        config.kafka.bootstrap_servers,
        "govhub-audit-key-reader",
        "govhub-audit-cli",
        config.kafka.client_config,
        enable_partition_eof=True,
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while True:
            if time.monotonic() > deadline:
                raise _Failure(f"reading {topic} timed out")
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    raise _Failure(f"reading {topic}: {err}")
                if msg.key() == SIGNING_KEY.encode():
                    value = msg.value()
                    if value:
                        yield 0, 0, orjson.loads(value)
    finally:
        consumer.close()


def _key_argument(text: str) -> Ed25519PublicKey:
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        return parse_public_key(text)
    except ValueError as exc:
        raise _Failure(f"--public-key: {exc}") from None


def run_verify(args: argparse.Namespace) -> int:
    public: Ed25519PublicKey | None = None
    if args.public_key:
        public = _key_argument(args.public_key)
    if args.input is not None:
        with args.input.open("rb") as handle:
            audit_log = read_jsonl(handle)
        if public is None and audit_log.public_key:
            public = _key_argument(audit_log.public_key)
    else:
        config, topics, audit_topic, chain_topic = _config(args)
        audit_log = read_log(
            config.kafka.bootstrap_servers, audit_topic, chain_topic, config.kafka.client_config
        )
        if public is None:
            public = published_key(config, topics)
    anchors = None
    if args.since is not None:
        try:
            anchors = anchors_of(orjson.loads(args.since.read_bytes()))
        except (orjson.JSONDecodeError, AttributeError, ValueError) as exc:
            raise _Failure(f"--since {args.since}: not a verify --json report ({exc})") from None
    report = verify_log(audit_log, public, anchors)
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        for finding in report.findings:
            print(finding)
        for partition, s in sorted(report.partitions.items()):
            print(
                f"partition {partition}: {s.events} events, {s.chained} chained, "
                f"{s.pending} pending, {s.checkpoints} signed checkpoints, "
                f"{s.unsealed} links after the last checkpoint"
            )
        print("audit trail intact" if report.ok else f"{len(report.findings)} problem(s) found")
    return EXIT_OK if report.ok else EXIT_FINDINGS


def run_export(args: argparse.Namespace) -> int:
    config, topics, audit_topic, chain_topic = _config(args)
    boot, extra = config.kafka.bootstrap_servers, config.kafka.client_config
    out = args.output.open("wb") if args.output else sys.stdout.buffer
    try:
        if args.format == "csv":
            text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
            write_csv(all_rows(read_topic(boot, audit_topic, extra)), text)
            text.flush()
            text.detach()
            return EXIT_OK
        audit_log = read_log(boot, audit_topic, chain_topic, extra)
        try:
            key = published_key(config, topics)
            public_text = public_bytes(key).hex()
        except SigningKeyMissing:
            public_text = None
        export_jsonl(
            audit_log,
            out,
            {"audit_topic": audit_topic, "chain_topic": chain_topic, "public_key": public_text},
        )
    finally:
        if args.output:
            out.close()
    return EXIT_OK


def run_public_key(args: argparse.Namespace) -> int:
    config, topics, _, _ = _config(args)
    print(public_bytes(published_key(config, topics)).hex())
    return EXIT_OK


def run_events(args: argparse.Namespace, client: ApiClient) -> int:
    params = {
        "recipient": args.recipient,
        "resource": args.resource,
        "record_id": args.record_id,
        "from": getattr(args, "from"),
        "to": args.to,
        "kind": args.kind,
        "offset": str(args.offset),
        "limit": str(args.limit),
    }
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    answer = client.call("GET", f"/v1/audit/events?{query}")
    return print_answer(args, answer, _events_text)


def _events_text(answer: dict[str, Any]) -> str:
    lines = []
    for e in answer["events"]:
        who = e["recipient"] or e["target"] or ""
        lines.append(
            f"{e['at']}  {e['kind']:<8} {e['action']:<24} {e['actor']:<20} {who:<20} "
            f"{e['resource'] or '':<12} {e['record_count'] or ''}"
        )
    lines.append(f"{answer['total']} event(s)" + ("" if answer["complete"] else " (index bounded)"))
    return "\n".join(lines)


def run_lineage(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.call("GET", "/v1/audit/lineage/" + urllib.parse.quote(args.record_id, safe=""))

    def text(a: dict[str, Any]) -> str:
        lines = [
            f"{d['at']}  {d['recipient']:<24} {d['subscription']:<28} offset {d['source_offset']}"
            f"  view schemas {d['view_schemas']}"
            for d in a["deliveries"]
        ]
        lines.append(f"record {a['record_id']} reached {len(a['deliveries'])} recipient frame(s)")
        return "\n".join(lines)

    return print_answer(args, answer, text)
