"""``govhub connector list|validate|run``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from confluent_kafka import KafkaException

from connectors.publisher import PublishError
from connectors.registry import default_registry
from connectors.runner import ConnectorRunner
from connectors.spec import load_spec
from hub.config import ConfigError
from hub.controlstate import ControlStateError
from hub.metrics import CONNECTOR_RESTARTS, serve_metrics

log = logging.getLogger(__name__)

# A connector whose batch Kafka failed resumes after these pauses (doubling up to the max).
RESUME_FIRST_S = 1.0
RESUME_MAX_S = 30.0


def _list(args: argparse.Namespace) -> int:
    types = default_registry().types()
    if args.json:
        doc = [
            {
                "name": t.name,
                "kind": t.kind,
                "summary": t.summary,
                "settings": t.config_model.model_json_schema(),
            }
            for t in types
        ]
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    for ctype in types:
        print(f"{ctype.name:<16} {ctype.kind:<7} {ctype.summary}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.config, default_registry())
    print(
        f"{args.config}: ok ({spec.type.kind} {spec.type.name} '{spec.name}' → "
        f"resource {spec.file.connector.resource})"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    spec = load_spec(args.config, default_registry())
    if spec.type.kind != "source":
        raise ConfigError(f"{args.config}: '{spec.type.name}' is a sink; sinks run with the SDK")
    metrics = spec.file.metrics
    if metrics is not None and metrics.port is not None:
        try:
            port = serve_metrics(metrics.port, metrics.host)
        except OSError as exc:
            raise ConfigError(
                f"{args.config}: metrics.port: cannot serve /metrics on "
                f"{metrics.host}:{metrics.port} ({exc})"
            ) from None
        log.info(
            "connector metrics served",
            extra={"connector": spec.name, "url": f"http://{metrics.host}:{port}/metrics"},
        )

    async def main() -> ConnectorRunner:
        """Run until stopped. When Kafka fails a batch (not acknowledged in time, refused),
        the connector resumes from its last checkpoint after a pause, as a supervisor would
        restart it: at most the batch after the checkpoint is published again, under the
        same record ids."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        pause = RESUME_FIRST_S
        while True:
            runner = ConnectorRunner(spec, spec.type.factory(spec.name, spec.settings))
            try:
                await runner.run(stop)
                return runner
            except (PublishError, ControlStateError, KafkaException) as exc:
                if stop.is_set():
                    raise
                CONNECTOR_RESTARTS.labels(spec.name).inc()
                log.warning(
                    "connector batch failed; resuming from the last checkpoint",
                    extra={"connector": spec.name, "error": str(exc), "pause_s": pause},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            if stop.is_set():
                return runner
            pause = min(pause * 2, RESUME_MAX_S)

    runner = asyncio.run(main())
    publisher = runner.publisher
    if publisher is not None:
        stats = publisher.stats
        print(
            f"{spec.name}: read {stats.read}, published {stats.published}, "
            f"rejected {sum(stats.rejected.values())} {dict(stats.rejected)}",
            file=sys.stderr,
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("connector", help="department-side connectors")
    sub = parser.add_subparsers(dest="connector_command", required=True)
    p = sub.add_parser("list", help="connector types available")
    p.add_argument("--json", action="store_true", help="types with their settings' JSON Schema")
    p.set_defaults(func=_list)
    p = sub.add_parser("validate", help="check a connector config file")
    p.add_argument("config", type=Path)
    p.set_defaults(func=_validate)
    p = sub.add_parser("run", help="run a source connector until stopped (or drained)")
    p.add_argument("config", type=Path)
    p.set_defaults(func=_run)
