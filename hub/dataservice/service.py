"""The ``data-service`` role: views kept current by a reader thread, calls served over HTTP.

Every node holds every partition of every service resource (a full copy): any node answers
any call from its own store, so there is no forwarding hop and a node's loss costs no
availability. See ``docs/data-services.md`` for the layout and its limits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import uuid
from pathlib import Path

from aiohttp import web

from hub import kafka, metrics
from hub.config import HubConfig
from hub.crypto.kms import Kms
from hub.dataservice.access import AccessBook
from hub.dataservice.audit import AuditSink, AuditWriter
from hub.dataservice.http import DataServiceApi
from hub.dataservice.materialise import Materialiser
from hub.dataservice.usage import SharedUsage
from hub.state import ControlState

log = logging.getLogger(__name__)


def _usage_node(port: int) -> str:
    """This node's name in the shared call counts: stable across restarts when the port is
    fixed (so a restarted node resumes its count), unique otherwise."""
    suffix = str(port) if port else f"any-{uuid.uuid4().hex[:8]}"
    return f"{socket.gethostname()}:{suffix}"


class DataService:
    def __init__(
        self,
        config: HubConfig,
        state: ControlState,
        kms: Kms | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self._config = config
        self._state = state
        cfg = config.data_service
        self.store_dir: Path = cfg.store_dir or (config.state_dir / "dataservice")
        self.views = Materialiser(config, state, self.store_dir)
        self.book = AccessBook(state, kms)
        self._writer: AuditWriter | None = None
        if audit is None:
            self._writer = AuditWriter(
                config.kafka.bootstrap_servers,
                state.topics.audit,
                config.kafka.client_config,
                node=f"{socket.gethostname()}:{cfg.port}",
            )
            audit = self._writer
        # With a daily quota, every node shares its call counts (hub/dataservice/usage.py).
        self._usage: SharedUsage | None = None
        if cfg.daily_quota is not None:
            self._usage = SharedUsage(
                config.kafka.bootstrap_servers,
                config.kafka.topic_prefix,
                _usage_node(cfg.port),
                config.kafka.client_config,
            )
        self._api = DataServiceApi(
            state,
            self.views,
            self.book,
            audit,
            node=f"{socket.gethostname()}:{cfg.port}",
            max_batch_keys=cfg.max_batch_keys,
            max_page_size=cfg.max_page_size,
            max_scan_per_page=cfg.max_scan_per_page,
            daily_quota=cfg.daily_quota,
            default_rate_limit_per_s=cfg.default_rate_limit_per_s,
            readiness=self.readiness,
            usage=None if self._usage is None else self._usage.totals,
        )
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        return f"http://{self._config.data_service.host}:{self.port}"

    def readiness(self) -> list[str]:
        if self.error is not None:
            return [f"data service failed: {self.error}"]
        problems = self.views.readiness()
        if self.port is None:
            problems.append("data service not listening yet")
        return problems

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (blocks; run it on a thread of its own)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._reader = threading.Thread(
            target=self._read, args=(stop,), name="govhub-dataservice-views", daemon=True
        )
        self._reader.start()
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        runner: web.AppRunner | None = None
        try:
            if self._usage is not None:
                # Before the first call: a restarted node resumes its own count of the day.
                kafka_cfg = self._config.kafka
                admin = kafka.admin_client(kafka_cfg.bootstrap_servers, kafka_cfg.client_config)
                self._usage.start(admin, kafka_cfg.replication_factor)
            runner = loop.run_until_complete(self._start())
            self.ready.set()
            loop.run_until_complete(self._wait(stop))
            if self.error is not None:
                raise RuntimeError(f"data service views failed: {self.error}")
        except BaseException as exc:
            self.error = self.error or exc
            self.ready.set()
            raise
        finally:
            if runner is not None:
                loop.run_until_complete(runner.cleanup())
            loop.close()
            self._reader.join(timeout=30)
            self.views.close()
            if self._usage is not None:
                self._share_usage()
                self._usage.stop()
            if self._writer is not None:
                left = self._writer.close(10)
                if left:
                    log.error("data service stopped with %d audit chunks unwritten", left)

    def _read(self, stop: threading.Event) -> None:
        try:
            self.views.run(stop)
        except Exception as exc:
            log.exception("data service view reader stopped")
            self.error = exc

    async def _start(self) -> web.AppRunner:
        cfg = self._config.data_service
        runner = web.AppRunner(self._api.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, cfg.host, cfg.port, backlog=1024)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else cfg.port
        self._api.node = f"{socket.gethostname()}:{self.port}"
        if self._writer is not None:
            self._writer.node = self._api.node
        log.info("data service listening", extra={"url": self.url})
        return runner

    async def _wait(self, stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        sharing: asyncio.Future[None] | None = None
        try:
            while not stop.is_set() and self.error is None:
                await asyncio.sleep(0.1)
                tick += 1
                if tick % 10 == 0:
                    self._api.tally.flush()
                    if self._usage is not None and (sharing is None or sharing.done()):
                        sharing = loop.run_in_executor(None, self._share_usage)
        finally:
            self._api.tally.flush()
            if sharing is not None:
                await asyncio.wait([sharing], timeout=15)

    def _share_usage(self) -> None:
        """Write this node's changed call counts (off the event loop); a failed write is
        logged and the counts go out with the next one."""
        assert self._usage is not None
        counts = self._api.limits.changed()
        if not counts:
            return
        try:
            written = self._usage.publish(counts)
        except Exception as exc:
            self._api.limits.unchanged(counts)
            metrics.DATASERVICE_USAGE_WRITES.labels("failed").inc()
            log.warning("data service: call counts not shared: %s", exc)
        else:
            metrics.DATASERVICE_USAGE_WRITES.labels("ok").inc(written)
