"""Runs a set of roles in one process: control state, api, router (design §2)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaError, KafkaException

from hub import kafka, metrics
from hub.api.app import build_app
from hub.audit.notary import Notary, NotaryConfig
from hub.audit.signing import ensure_signing_key
from hub.config import HubConfig
from hub.crypto.kms import LocalFileKms
from hub.dataservice.service import DataService
from hub.gateway.service import GatewayService
from hub.ops.health import BrokerProbe, HealthServer, export_readiness
from hub.router.service import RouterService
from hub.state import ControlState
from hub.topics import ensure_hub_topics

log = logging.getLogger(__name__)

ROLES = ("api", "router", "gateway", "audit", "data-service")
# A router or notary that hit a fatal Kafka error starts again after these pauses (doubling
# up to the max).
ROLE_RESTART_FIRST_S = 1.0
ROLE_RESTART_MAX_S = 30.0


class StartupError(Exception):
    """A role could not start."""


class HubRuntime:
    def __init__(self, config: HubConfig, roles: Iterable[str] = ROLES) -> None:
        self.config = config
        self.roles = tuple(roles)
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise StartupError(f"unknown roles {sorted(unknown)}; choose from {list(ROLES)}")
        self.state = ControlState(config)
        self.kms = LocalFileKms.from_config(config.crypto)
        self.router: RouterService | None = None
        self.failure: str | None = None
        """Set when a role's thread ended with an error: the process should exit."""
        self.gateway: GatewayService | None = None
        self.data_service: DataService | None = None
        self.notary: Notary | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._api_loop: asyncio.AbstractEventLoop | None = None
        self._api_runner: web.AppRunner | None = None
        self._api_started = threading.Event()
        self._api_error: BaseException | None = None
        self.api_port: int | None = None
        self.metrics_port: int | None = None
        self.broker_probe = BrokerProbe(config.kafka.bootstrap_servers, config.kafka.client_config)
        self._health: HealthServer | None = None

    @property
    def gateway_url(self) -> str:
        if self.gateway is None or self.gateway.url is None:
            raise StartupError("the gateway role is not running")
        return self.gateway.url

    @property
    def data_service_url(self) -> str:
        if self.data_service is None or self.data_service.url is None:
            raise StartupError("the data-service role is not running")
        return self.data_service.url

    @property
    def api_url(self) -> str:
        if self.api_port is None:
            raise StartupError("the api role is not running")
        return f"{self.config.api.scheme}://{self.config.api.host}:{self.api_port}"

    def readiness(self) -> list[str]:
        problems = [
            f"control topic {t.topic} not loaded" for t in self.state.tables if not t.loaded
        ]
        if "router" in self.roles and (self.router is None or not self.router.ready):
            problems.append("router not ready (broker unreachable or transactions not initialised)")
        if "gateway" in self.roles:
            problems += self.gateway.readiness() if self.gateway else ["gateway not started"]
        if "data-service" in self.roles:
            ds = self.data_service
            problems += ds.readiness() if ds else ["data service not started"]
        if "audit" in self.roles and (self.notary is None or not self.notary.ready):
            problems.append("audit notary not ready (chain heads not read yet)")
        problems += self.broker_probe.problems()
        return problems

    def start(self, timeout: float = 60.0) -> None:
        cfg = self.config
        admin = kafka.admin_client(cfg.kafka.bootstrap_servers, cfg.kafka.client_config)
        ensure_hub_topics(
            admin, self.state.topics, cfg.kafka.delivery_partitions, cfg.kafka.replication_factor
        )
        self.state.start(timeout)
        self.broker_probe.start()
        export_readiness(self.readiness)
        if "router" in self.roles:
            self.router = RouterService(cfg, self.state, self.kms)
            self._spawn("router", self._run_router)
        if "audit" in self.roles:
            self.notary = self._new_notary()
            self._spawn("audit", self._run_notary)
        if "gateway" in self.roles:
            self.gateway = GatewayService(cfg, self.state, self.kms)
            self._spawn("gateway", self._run_gateway)
            if not self.gateway.ready.wait(timeout) or self.gateway.error is not None:
                raise StartupError(f"gateway failed to start: {self.gateway.error or 'timeout'}")
        if "data-service" in self.roles:
            self.data_service = DataService(cfg, self.state, self.kms)
            self._spawn("data-service", self._run_data_service)
            if not self.data_service.ready.wait(timeout) or self.data_service.error is not None:
                raise StartupError(
                    f"data service failed to start: {self.data_service.error or 'timeout'}"
                )
        if "api" in self.roles:
            self._spawn("api", self._run_api)
            if not self._api_started.wait(timeout):
                raise StartupError("api did not start")
            if self._api_error is not None:
                raise StartupError(f"api failed to start: {self._api_error}")
        elif cfg.metrics.port is not None:
            # /healthz and /readyz beside /metrics, so a router alone can be probed too.
            self._health = HealthServer(cfg.metrics.host, cfg.metrics.port, self.readiness)
            self.metrics_port = self._health.start()
        log.info("hub roles started", extra={"roles": list(self.roles)})

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.readiness():
            if time.monotonic() > deadline:
                raise StartupError("not ready: " + "; ".join(self.readiness()))
            time.sleep(0.05)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"govhub-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _new_notary(self) -> Notary:
        cfg = self.config
        return Notary(
            cfg.kafka.bootstrap_servers,
            self.state.topics,
            ensure_signing_key(self.state.keys, self.kms),
            NotaryConfig(
                transactional_id=f"{cfg.kafka.topic_prefix}govhub-audit-notary",
                group_id=f"{cfg.kafka.topic_prefix}govhub-audit-notary",
                alg="sm3" if cfg.router.suite == "SM4-GCM" else "sha256",
            ),
            cfg.kafka.client_config,
        )

    def _run_router(self) -> None:
        def new_router() -> Any:
            self.router = RouterService(self.config, self.state, self.kms)
            return self.router

        self._run_restarting("router", self.router, new_router)

    def _run_notary(self) -> None:
        def new_notary() -> Any:
            self.notary = self._new_notary()
            return self.notary

        self._run_restarting("audit notary", self.notary, new_notary)

    def _run_restarting(self, name: str, first: Any, new: Callable[[], Any]) -> None:
        """Run a transactional role (router, notary). After a fatal producer error (the
        producer cannot go on, e.g. fenced, or in an invalid transaction state after a
        broker failed mid-transaction) the role starts again with a new consumer and
        producer under the same transactional id, which aborts what was left open, and
        re-reads from its last commit: what a supervisor restarting the process would do,
        without the restart."""
        role, pause = first, ROLE_RESTART_FIRST_S
        while True:
            assert role is not None
            try:
                role.run(self._stop)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if self._stop.is_set() or not (isinstance(error, KafkaError) and error.fatal()):
                    log.exception("%s stopped with an error", name)
                    self.failure = f"{name} stopped with an error: {exc}"
                    return
                metrics.ROLE_RESTARTS.labels(name).inc()
                log.warning(
                    "%s starts again after a fatal Kafka error",
                    name,
                    extra={"error": str(error), "pause_s": pause},
                )
            except Exception as exc:
                log.exception("%s stopped with an error", name)
                self.failure = f"{name} stopped with an error: {exc}"
                return
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, ROLE_RESTART_MAX_S)
            role = new()

    def _run_gateway(self) -> None:
        assert self.gateway is not None
        try:
            self.gateway.run(self._stop)
        except Exception as exc:
            log.exception("gateway stopped with an error")
            self.failure = f"gateway stopped with an error: {exc}"

    def _run_data_service(self) -> None:
        assert self.data_service is not None
        try:
            self.data_service.run(self._stop)
        except Exception as exc:
            log.exception("data service stopped with an error")
            self.failure = f"data service stopped with an error: {exc}"

    def _run_api(self) -> None:
        loop = asyncio.new_event_loop()
        self._api_loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_api())
        except BaseException as exc:
            self._api_error = exc
            self._api_started.set()
            return
        self._api_started.set()
        loop.run_forever()
        loop.run_until_complete(self._stop_api())
        loop.close()

    async def _start_api(self) -> None:
        app = build_app(self.state, self.kms, self.readiness)
        self._api_runner = web.AppRunner(app, access_log=None)
        await self._api_runner.setup()
        site = web.TCPSite(
            self._api_runner,
            self.config.api.host,
            self.config.api.port,
            ssl_context=self.config.api.server_ssl_context(),
        )
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.api_port = sockets[0].getsockname()[1] if sockets else self.config.api.port

    async def _stop_api(self) -> None:
        if self._api_runner is not None:
            await self._api_runner.cleanup()

    def stop(self) -> None:
        self._stop.set()
        if self._api_loop is not None and self._api_loop.is_running():
            self._api_loop.call_soon_threadsafe(self._api_loop.stop)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        if self._health is not None:
            self._health.stop()
            self._health = None
        self.broker_probe.stop()
        self.state.stop()

    def __enter__(self) -> HubRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
