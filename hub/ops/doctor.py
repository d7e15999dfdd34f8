"""``govhub doctor``: checks a site and says what to fix.

Each check returns a :class:`Finding` — ``ok``, ``warn`` or ``fail`` — with what was seen
and, when it is not ok, the fix. The checks: configuration, broker connectivity, the
hub's topics (present, compacted where state lives, replicated enough), ACLs, the clocks
of this machine and the api, the running roles' health and readiness, and the versions
of the hub and its Kafka client against the api's.

Exit code 0 when nothing failed (warnings allowed), 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import email.utils
import importlib
import json
import platform
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import confluent_kafka
from confluent_kafka.admin import AdminClient

from hub import __version__, kafka
from hub.config import ConfigError, HubConfig, load_config
from hub.ops.progress import Progress
from hub.topics import Topics

# The admin API's value types (not re-exported for the type checker).
_admin_api: Any = importlib.import_module("confluent_kafka.admin")
AclBindingFilter = _admin_api.AclBindingFilter
AclOperation = _admin_api.AclOperation
AclPermissionType = _admin_api.AclPermissionType
ConfigResource = _admin_api.ConfigResource
ResourcePatternType = _admin_api.ResourcePatternType
ResourceType = _admin_api.ResourceType

Status = Literal["ok", "warn", "fail"]
MAX_CLOCK_SKEW_S = 2.0
PRODUCTION_REPLICAS = 3


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""


Check = Callable[[], Iterator[Finding]]


class Doctor:
    """Runs the checks against one configuration; URLs of running roles are optional."""

    def __init__(
        self,
        config: HubConfig,
        role_urls: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.config = config
        self.role_urls = {k: v.rstrip("/") for k, v in (role_urls or {}).items()}
        self.timeout = timeout
        self.topics = Topics(config.kafka.topic_prefix)
        self._admin: AdminClient | None = None
        self._brokers = 0

    # -- the checks, in order --------------------------------------------------------------

    def checks(self) -> list[tuple[str, Check]]:
        return [
            ("connectivity", self.check_connectivity),
            ("topics", self.check_topics),
            ("acls", self.check_acls),
            ("roles", self.check_roles),
            ("clocks", self.check_clocks),
            ("versions", self.check_versions),
        ]

    def run(self, progress: Progress | None = None) -> list[Finding]:
        findings: list[Finding] = []
        for name, check in self.checks():
            if progress is not None:
                progress.update(f"checking {name}")
            try:
                findings.extend(check())
            except Exception as exc:  # a check that breaks is a finding, not a crash
                findings.append(Finding(name, "fail", f"the check itself failed: {exc}"))
        return findings

    def check_connectivity(self) -> Iterator[Finding]:
        bootstrap = self.config.kafka.bootstrap_servers
        admin = kafka.admin_client(bootstrap, self.config.kafka.client_config)
        try:
            metadata = admin.list_topics(timeout=self.timeout)
        except confluent_kafka.KafkaException as exc:
            yield Finding(
                "connectivity",
                "fail",
                f"no answer from {bootstrap}: {exc}",
                "start the brokers (`govhub kafka up` locally), or fix "
                "kafka.bootstrap_servers / KAFKA_BOOTSTRAP_SERVERS and the network path",
            )
            return
        self._admin = admin
        self._brokers = len(metadata.brokers)
        yield Finding(
            "connectivity",
            "ok",
            f"{bootstrap}: cluster {metadata.cluster_id}, {self._brokers} broker(s), "
            f"controller {metadata.controller_id}",
        )

    def check_topics(self) -> Iterator[Finding]:
        admin = self._admin
        if admin is None:
            yield Finding("topics", "warn", "not checked: the cluster does not answer")
            return
        topics = admin.list_topics(timeout=self.timeout).topics
        wanted = [*self.topics.control, self.topics.delivery, self.topics.audit]
        missing = [t for t in wanted if t not in topics]
        if missing:
            yield Finding(
                "topics",
                "fail",
                f"missing: {', '.join(missing)}",
                "start the api role once (`govhub serve --roles api`): it creates the hub's "
                "topics; or check kafka.topic_prefix",
            )
        present = [t for t in wanted if t in topics]
        if not present:
            return
        resources = [ConfigResource(ResourceType.TOPIC, t) for t in self.topics.control]
        resources = [r for r in resources if r.name in topics]
        futures = admin.describe_configs(resources, request_timeout=self.timeout)
        not_compacted = []
        for resource, future in futures.items():
            entries = future.result(timeout=self.timeout)
            policy = entries["cleanup.policy"].value if "cleanup.policy" in entries else ""
            if "compact" not in str(policy):
                not_compacted.append(resource.name)
        if not_compacted:
            yield Finding(
                "topics",
                "fail",
                f"control topics not compacted: {', '.join(not_compacted)}",
                "set cleanup.policy=compact on them (kafka-configs --alter --add-config "
                "cleanup.policy=compact); without it the control state is lost to retention",
            )
        replicas = {t: len(next(iter(topics[t].partitions.values())).replicas) for t in present}
        thin = sorted(t for t, n in replicas.items() if n < min(PRODUCTION_REPLICAS, self._brokers))
        if thin:
            yield Finding(
                "topics",
                "warn",
                f"fewer replicas than brokers allow: {', '.join(thin)}",
                "raise kafka.replication_factor before creating topics, or reassign the "
                "partitions (kafka-reassign-partitions) to 3 replicas",
            )
        delivery = topics.get(self.topics.delivery)
        if delivery is not None:
            partitions = len(delivery.partitions)
            expected = self.config.kafka.delivery_partitions
            if partitions != expected:
                yield Finding(
                    "topics",
                    "warn",
                    f"{self.topics.delivery} has {partitions} partitions, config says {expected}",
                    "set kafka.delivery_partitions to the topic's count (partitions decide "
                    "which gateway owns a recipient)",
                )
        if not missing and not not_compacted:
            yield Finding(
                "topics",
                "ok",
                f"{len(present)} hub topics present, control topics compacted, "
                f"replicas {min(replicas.values())}..{max(replicas.values())}",
            )

    def check_acls(self) -> Iterator[Finding]:
        admin = self._admin
        if admin is None:
            yield Finding("acls", "warn", "not checked: the cluster does not answer")
            return
        every = AclBindingFilter(
            ResourceType.ANY,
            None,
            ResourcePatternType.ANY,
            None,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        try:
            bindings = admin.describe_acls(every, request_timeout=self.timeout).result(
                timeout=self.timeout
            )
        except confluent_kafka.KafkaException as exc:
            text = str(exc)
            if "SECURITY_DISABLED" in text or "No Authorizer" in text or "authorizer" in text:
                production = self._brokers >= PRODUCTION_REPLICAS
                yield Finding(
                    "acls",
                    "warn" if production else "ok",
                    "the cluster has no authorizer: ACLs are off",
                    "enable StandardAuthorizer with SASL/SCRAM and prefix ACLs per department "
                    "(docs/operations.md, Security)"
                    if production
                    else "",
                )
                return
            yield Finding("acls", "fail", f"cannot list ACLs: {text}", "grant DESCRIBE on CLUSTER")
            return
        prefix = f"{self.config.kafka.topic_prefix}govhub"
        ours = [b for b in bindings if str(b.name).startswith((prefix, "_" + prefix))]
        yield Finding(
            "acls",
            "ok" if ours else "warn",
            f"{len(bindings)} ACLs, {len(ours)} on the hub's topics",
            "" if ours else "no ACL names the hub's topics: connectors can write anywhere",
        )

    def _get(self, url: str) -> tuple[int, bytes, dict[str, str]]:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return int(response.status), response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def check_roles(self) -> Iterator[Finding]:
        if not self.role_urls:
            yield Finding(
                "roles",
                "warn",
                "no role URL given: the running roles were not checked",
                "pass --api-url, --router-url and --gateway-url",
            )
            return
        for role, url in sorted(self.role_urls.items()):
            try:
                status, body, _ = self._get(f"{url}/readyz")
            except (urllib.error.URLError, OSError) as exc:
                yield Finding(
                    "roles",
                    "fail",
                    f"{role} at {url} does not answer: {exc}",
                    f"start it (`govhub serve --roles {role}`) or fix the URL",
                )
                continue
            if status == 200:
                yield Finding("roles", "ok", f"{role} at {url} is ready")
                continue
            try:
                reasons = json.loads(body).get("reasons", [])
            except ValueError:
                reasons = [body.decode(errors="replace")[:200]]
            yield Finding(
                "roles",
                "fail",
                f"{role} at {url} is not ready: {'; '.join(map(str, reasons))}",
                _readiness_fix(reasons),
            )

    def check_clocks(self) -> Iterator[Finding]:
        api = self.role_urls.get("api")
        if api is None:
            yield Finding("clocks", "warn", "not checked: no --api-url", "pass --api-url")
            return
        before = time.time()
        try:
            _, _, headers = self._get(f"{api}/healthz")
        except (urllib.error.URLError, OSError) as exc:
            yield Finding("clocks", "fail", f"the api does not answer: {exc}")
            return
        after = time.time()
        date = headers.get("Date")
        if date is None:
            yield Finding("clocks", "warn", "the api sent no Date header")
            return
        remote = email.utils.parsedate_to_datetime(date).timestamp()
        skew = remote - (before + after) / 2
        # The Date header has one-second resolution.
        if abs(skew) > MAX_CLOCK_SKEW_S + 1:
            yield Finding(
                "clocks",
                "fail",
                f"this machine and the api differ by {skew:+.1f} s",
                "run NTP (chrony or systemd-timesyncd) on every host: key lifetimes, "
                "subscription expiry and approval deadlines follow the clock",
            )
        else:
            yield Finding("clocks", "ok", f"api clock within {abs(skew):.1f} s of this machine")

    def check_versions(self) -> Iterator[Finding]:
        client, lib = confluent_kafka.__version__, confluent_kafka.libversion()[0]
        here = f"govhub {__version__}, confluent-kafka {client}, librdkafka {lib}, "
        here += f"Python {platform.python_version()}"
        api = self.role_urls.get("api")
        if api is None:
            yield Finding("versions", "ok", here)
            return
        try:
            _, body, _ = self._get(f"{api}/openapi.json")
            remote = str(json.loads(body)["info"]["version"])
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            yield Finding("versions", "warn", f"{here}; the api's version is unknown ({exc})")
            return
        if remote != __version__:
            yield Finding(
                "versions",
                "warn",
                f"{here}; the api runs govhub {remote}",
                "upgrade the CLI and the roles to one version (docs/operations.md, Upgrades)",
            )
        else:
            yield Finding("versions", "ok", f"{here}; the api runs the same version")


def _readiness_fix(reasons: Sequence[object]) -> str:
    text = " ".join(map(str, reasons))
    if "broker unreachable" in text:
        return "the role cannot reach Kafka: check the brokers and the network from its host"
    if "not loaded" in text:
        return "a control topic is not loaded yet: wait, or check the topic and the broker"
    if "router" in text:
        return "the router's transactions are not initialised: see its log (fenced? ACLs?)"
    return "see the role's log"


# -- command line ----------------------------------------------------------------------------


def format_findings(findings: Sequence[Finding]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for finding in findings:
        lines.append(f"[{marks[finding.status]}] {finding.check:<12} {finding.detail}")
        if finding.fix:
            lines.append(f"{'':19}fix: {finding.fix}")
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    lines.append(f"{failed} failed, {warned} warnings, {len(findings)} findings")
    return "\n".join(lines)


def run_doctor(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        finding = Finding("config", "fail", str(exc), "fix the configuration named above")
        _print([finding], args.json)
        return 1
    urls = {
        role: url
        for role, url in (
            ("api", args.api_url),
            ("router", args.router_url),
            ("gateway", args.gateway_url),
        )
        if url
    }
    doctor = Doctor(config, urls, timeout=args.timeout)
    with Progress(enabled=not args.json) as progress:
        findings = [Finding("config", "ok", "configuration loaded"), *doctor.run(progress)]
    _print(findings, args.json)
    return 1 if any(f.status == "fail" for f in findings) else 0


def _print(findings: Sequence[Finding], as_json: bool) -> None:
    if as_json:
        document: dict[str, Any] = {
            "ok": not any(f.status == "fail" for f in findings),
            "findings": [asdict(f) for f in findings],
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        print(format_findings(findings))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="check connectivity, topics, ACLs, clocks, roles and versions; say what to fix",
    )
    doctor.add_argument("--config", type=Path, default=None, help="TOML config file")
    doctor.add_argument("--api-url", help="a running api, e.g. http://127.0.0.1:8480")
    doctor.add_argument("--router-url", help="a router's metrics port, e.g. http://127.0.0.1:9481")
    doctor.add_argument("--gateway-url", help="a running gateway, e.g. http://127.0.0.1:8490")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.set_defaults(func=run_doctor)
