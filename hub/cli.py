"""The ``govhub`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from hub import __version__
from hub.config import ConfigError, load_config
from hub.logs import setup_logging


def _serve(args: argparse.Namespace) -> int:
    import faulthandler

    from hub.runtime import HubRuntime, StartupError

    # `kill -USR1 <pid>` prints every thread's stack to stderr (diagnosing a stuck role).
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    overrides = {}
    if args.port is not None:
        overrides["api.port"] = args.port
    config = load_config(args.config, overrides=overrides)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    runtime = HubRuntime(config, roles)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        runtime.start()
        runtime.wait_ready()
    except StartupError as exc:
        runtime.stop()
        print(f"govhub: error: {exc}", file=sys.stderr)
        return 2
    where = (
        f" api at {runtime.api_url}"
        if "api" in roles
        else f" metrics at http://{config.metrics.host}:{runtime.metrics_port}/metrics"
    )
    if "gateway" in roles:
        where += f" gateway at {runtime.gateway_url}"
    if "data-service" in roles:
        where += f" data service at {runtime.data_service_url}"
    print(f"govhub serving roles {','.join(roles)};{where}", flush=True)
    # A role whose thread died makes the process exit non-zero, so its supervisor restarts
    # it (a new router fences the old one's transaction).
    while not stop.wait(0.5):
        if runtime.failure is not None:
            print(f"govhub: error: {runtime.failure}", file=sys.stderr)
            runtime.stop()
            return 1
    runtime.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from hub.demo.run import run_demo

    return run_demo(
        records=args.records,
        rate=args.rate,
        out_dir=args.out,
        keep_running=args.keep_running,
    )


def build_parser() -> argparse.ArgumentParser:
    from connectors.commands import register as register_connector
    from connectors.subscribe import register as register_subscribe
    from hub.audit.commands import register as register_audit
    from hub.bench import register as register_bench
    from hub.catalogue.commands import register as register_catalogue
    from hub.crypto.commands import register as register_kek
    from hub.localkafka.commands import register as register_kafka
    from hub.ops.doctor import register as register_doctor
    from hub.parties.commands import register as register_party
    from hub.subscriptions.commands import register as register_subscription

    parser = argparse.ArgumentParser(
        prog="govhub", description="GovHub: government data sharing and exchange hub"
    )
    parser.add_argument("--version", action="version", version=f"govhub {__version__}")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    sub = parser.add_subparsers(dest="command", required=True)
    register_kafka(sub)
    register_connector(sub)
    register_catalogue(sub)
    register_party(sub)
    register_subscription(sub)
    register_subscribe(sub)
    register_bench(sub)
    register_doctor(sub)
    register_kek(sub)
    register_audit(sub)

    serve = sub.add_parser("serve", help="run hub roles in this process")
    serve.add_argument(
        "--roles",
        default="api,router",
        help="comma-separated: api,router,gateway,data-service,audit",
    )
    serve.add_argument("--config", type=Path, default=None, help="TOML config file")
    serve.add_argument("--port", type=int, default=None, help="api port (overrides config)")
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="run the end-to-end demo on a local Kafka")
    demo.add_argument("--records", type=int, default=3000)
    demo.add_argument("--rate", type=int, default=1000, help="records per second to publish")
    demo.add_argument("--out", type=Path, default=Path("demo-out"))
    demo.add_argument("--keep-running", action="store_true")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, json=args.log_format == "json")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"govhub: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
