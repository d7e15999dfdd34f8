"""``govhub connector list|validate|run``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from connectors.registry import default_registry
from connectors.runner import ConnectorRunner
from connectors.spec import load_spec
from hub.config import ConfigError
from hub.metrics import serve_metrics

log = logging.getLogger(__name__)


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
    source = spec.type.factory(spec.name, spec.settings)
    runner = ConnectorRunner(spec, source)
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

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runner.run(stop)

    asyncio.run(main())
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
