"""``govhub kafka up|status|down|acls``: the local Kafka from the command line (``acls``:
the hub's principals and ACLs on any secure cluster, ``hub.kafkasec``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hub.localkafka.cluster import ClusterStatus, LocalKafka
from hub.localkafka.config import DEFAULT_BASE_PORT, NODE_COUNTS
from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.jars import DEFAULT_KAFKA_VERSION, jars_cached
from hub.localkafka.jmx import DEFAULT_METRICS_PORT
from hub.localkafka.paths import kafka_state_dir
from hub.localkafka.security import SecurityPaths, security_paths
from hub.localkafka.state import load_record
from hub.ops.progress import Progress

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_ERROR = 2

Handler = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``kafka`` command with its ``up``, ``status`` and ``down`` actions."""
    kafka = subparsers.add_parser(
        "kafka",
        help="run a local Apache Kafka (KRaft) from Maven Central jars",
        description="Run a local Apache Kafka in KRaft mode on 127.0.0.1 "
        "(node i: client port BASE+2i, controller port BASE+2i+1).",
    )
    actions = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start the cluster (fetches the jars on first use)")
    up.add_argument(
        "--nodes", type=int, choices=NODE_COUNTS, help="number of nodes (default: as before, or 1)"
    )
    up.add_argument(
        "--base-port",
        type=int,
        metavar="N",
        help=f"first port (default: as before, or {DEFAULT_BASE_PORT})",
    )
    up.add_argument(
        "--version",
        dest="kafka_version",
        metavar="V",
        help=f"Apache Kafka version (default: as before, or {DEFAULT_KAFKA_VERSION})",
    )
    up.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="seconds to wait for readiness"
    )
    metrics = up.add_mutually_exclusive_group()
    metrics.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="broker metrics (JMX exporter) of node i on port N+i "
        f"(default: as before, or {DEFAULT_METRICS_PORT})",
    )
    metrics.add_argument(
        "--no-metrics", action="store_true", help="start the brokers without the JMX exporter"
    )
    up.add_argument(
        "--secure",
        action="store_true",
        help="SASL/SCRAM-SHA-512 clients and ACLs (StandardAuthorizer); fixed at the first up",
    )
    up.add_argument(
        "--tls", action="store_true", help="with --secure: SASL_SSL with a generated local CA"
    )
    _add_state_dir(up)
    up.set_defaults(func=_guarded(run_up))

    status = actions.add_parser("status", help="show the nodes; exit 1 when not healthy")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_state_dir(status)
    status.set_defaults(func=_guarded(run_status))

    down = actions.add_parser("down", help="stop the cluster (data is kept)")
    down.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds before SIGKILL"
    )
    _add_state_dir(down)
    down.set_defaults(func=_guarded(run_down))

    from hub.kafkasec.commands import add_acls_action

    add_acls_action(actions)


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="GovHub state folder, Kafka in DIR/kafka (default: $GOVHUB_STATE_DIR or ./.govhub)",
    )


def _guarded(handler: Handler) -> Handler:
    """Turn a LocalKafkaError into ``govhub: error: ...`` on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except LocalKafkaError as exc:
            print(f"govhub: error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _cluster(args: argparse.Namespace) -> LocalKafka:
    """A LocalKafka for the chosen state folder; unset options follow the last ``up``."""
    state_dir = kafka_state_dir(args.state_dir)
    record = load_record(state_dir)
    nodes = getattr(args, "nodes", None) or (record.nodes if record else 1)
    base_port = getattr(args, "base_port", None) or (
        record.base_port if record else DEFAULT_BASE_PORT
    )
    version = getattr(args, "kafka_version", None) or (
        record.kafka_version if record else DEFAULT_KAFKA_VERSION
    )
    if getattr(args, "no_metrics", False):
        metrics_port = None
    elif getattr(args, "metrics_port", None):
        metrics_port = args.metrics_port
    elif record is not None:
        metrics_port = record.metrics_port
    else:
        metrics_port = DEFAULT_METRICS_PORT
    tls = bool(getattr(args, "tls", False))
    secure = bool(getattr(args, "secure", False)) or tls
    if record is not None and not secure:
        secure, tls = record.security != "plaintext", record.security == "sasl_ssl"
    return LocalKafka(
        state_dir,
        nodes=nodes,
        base_port=base_port,
        kafka_version=version,
        metrics_port=metrics_port,
        secure=secure,
        tls=tls,
    )


def run_up(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    if not jars_cached(cluster.kafka_version, cluster.cache_dir):
        print(
            f"govhub: fetching the Apache Kafka {cluster.kafka_version} jars with Maven "
            "(first run only)",
            file=sys.stderr,
            flush=True,
        )
    started = time.monotonic()
    with Progress() as progress:
        progress.update(f"starting Kafka {cluster.kafka_version} in {cluster.state_dir}")
        bootstrap = cluster.up(timeout=args.timeout)
    took = time.monotonic() - started
    nodes = cluster.requested.nodes
    print(f"bootstrap servers: {bootstrap}")
    client_config = cluster.client_config
    if client_config:
        print(format_client_settings(client_config, security_paths(cluster.state_dir)))
    if cluster.metrics_warning:
        print(f"govhub: warning: {cluster.metrics_warning}", file=sys.stderr)
    ports = [node.metrics_port for node in cluster.status().nodes if node.metrics_port]
    if ports:
        print("broker metrics: " + ", ".join(f"http://127.0.0.1:{p}/metrics" for p in ports))
    print(
        f"ready in {took:.1f} s (Kafka {cluster.kafka_version}, {nodes} node"
        f"{'s' if nodes > 1 else ''}, state {cluster.state_dir})"
    )
    return EXIT_OK


def format_client_settings(settings: dict[str, str], paths: SecurityPaths) -> str:
    """The admin principal's client settings, as the hub's ``[kafka.client_config]``."""
    lines = [
        f"secure mode: admin credentials in {paths.credentials} (mode 0600)",
        f"client settings (librdkafka; also in {paths.client_properties}):",
        "  [kafka.client_config]",
    ]
    lines += [f'  "{key}" = "{value}"' for key, value in settings.items()]
    if "ssl.ca.location" in settings:
        lines.append(f"CA certificate for clients: {settings['ssl.ca.location']}")
    lines.append("create the hub's principals and ACLs with: govhub kafka acls --apply")
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    status = _cluster(args).status()
    print(status_json(status) if args.json else format_status(status))
    return EXIT_OK if status.healthy else EXIT_UNHEALTHY


def run_down(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    cluster.down(timeout=args.timeout)
    print(f"kafka stopped (data kept in {cluster.state_dir})")
    return EXIT_OK


def status_json(status: ClusterStatus) -> str:
    """The status as one JSON document (``govhub kafka status --json``)."""
    document = {
        "state_dir": str(status.state_dir),
        "kafka_version": status.kafka_version,
        "bootstrap_servers": status.bootstrap_servers,
        "healthy": status.healthy,
        "detail": status.detail,
        "nodes": [
            {
                "node_id": node.node_id,
                "pid": node.pid,
                "alive": node.alive,
                "broker": f"127.0.0.1:{node.broker_port}",
                "controller": f"127.0.0.1:{node.controller_port}",
                "metrics": (
                    f"http://127.0.0.1:{node.metrics_port}/metrics" if node.metrics_port else None
                ),
                "log": str(node.log_path),
            }
            for node in status.nodes
        ],
    }
    return json.dumps(document, indent=2)


def format_status(status: ClusterStatus) -> str:
    """A small table of the nodes, then bootstrap servers and health."""
    header = ("node", "pid", "state", "broker", "controller", "log")
    rows = [
        (
            str(node.node_id),
            str(node.pid) if node.pid is not None else "-",
            "running" if node.alive else ("stale pid" if node.pid is not None else "stopped"),
            f"127.0.0.1:{node.broker_port}",
            f"127.0.0.1:{node.controller_port}",
            str(node.log_path),
        )
        for node in status.nodes
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = [f"Kafka {status.kafka_version}, state {status.state_dir}"]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    lines.append(f"bootstrap servers: {status.bootstrap_servers}")
    exporters = [n.metrics_port for n in status.nodes if n.metrics_port]
    if exporters:
        urls = ", ".join(f"http://127.0.0.1:{port}/metrics" for port in exporters)
        lines.append(f"broker metrics: {urls}")
    health = "yes" if status.healthy else f"no ({status.detail})"
    lines.append(f"healthy: {health}")
    return "\n".join(lines)
