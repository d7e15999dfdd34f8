"""Health and readiness of a hub process, whatever roles it runs.

* :class:`BrokerProbe` asks the cluster to describe itself in the background, so ``/readyz``
  can say "broker unreachable" without a Kafka round trip per request.
* :class:`HealthServer` serves ``/healthz``, ``/readyz`` and ``/metrics`` for processes
  without the ``api`` role (a router alone, say), on the metrics port. The ``api`` role
  serves the same three paths on its own port, the gateway on its port.

``/readyz`` answers 200 ``{"status": "ready"}`` or 503 ``{"status": "not ready",
"reasons": [...]}``; each reason names what is missing (a control topic not loaded, the
broker unreachable, the router's transactions not initialised, ...).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import Gauge

from hub import kafka, metrics

log = logging.getLogger(__name__)

Readiness = Callable[[], list[str]]

PROCESS_READY = Gauge(
    "govhub_ready",
    "1 while this process reports ready at /readyz, 0 while it gives reasons not to be",
)
BROKER_REACHABLE = Gauge(
    "govhub_broker_reachable",
    "1 while the last request to the Kafka cluster (DescribeCluster) succeeded, else 0",
)
# Unknown (NaN) until a hub runtime exports its readiness and probes the broker, so a
# process that only imports this module (a connector, a tool) raises no alert.
PROCESS_READY.set(float("nan"))
BROKER_REACHABLE.set(float("nan"))


class BrokerProbe:
    """Checks every ``interval`` seconds that the cluster answers a request."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_config: Mapping[str, str] | None = None,
        *,
        interval: float = 5.0,
        timeout: float = 3.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._client_config = dict(client_config or {})
        self._interval = interval
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._error = ""
        self._admin: Any = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 2)
            self._thread = None

    def check(self) -> None:
        """One probe now (the background thread calls this every ``interval``).

        One admin client for the probe's life, and a ``DescribeCluster`` request: full
        topic metadata would cost every hub process thousands of objects per probe on a
        cluster with thousands of topics, and a client per probe its connections."""
        try:
            if self._admin is None:
                self._admin = kafka.admin_client(self.bootstrap_servers, self._client_config)
            cluster = self._admin.describe_cluster(request_timeout=self._timeout).result(
                timeout=self._timeout + 1
            )
            if not cluster.nodes:
                raise RuntimeError("the cluster lists no brokers")
        except Exception as exc:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            self._error = str(exc) or type(exc).__name__
            BROKER_REACHABLE.set(0)
        else:
            self._failing_since = None
            self._error = ""
            BROKER_REACHABLE.set(1)

    def problems(self) -> list[str]:
        since = self._failing_since
        if since is None:
            return []
        return [
            f"broker unreachable at {self.bootstrap_servers} for "
            f"{time.monotonic() - since:.0f} s: {self._error}"
        ]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # never let the probe thread die
                log.exception("broker probe failed")
            self._stop.wait(self._interval)


def export_readiness(readiness: Readiness) -> None:
    """Make ``govhub_ready`` follow ``readiness`` (evaluated at each scrape)."""
    PROCESS_READY.set_function(lambda: 0.0 if readiness() else 1.0)


def readiness_body(problems: list[str]) -> tuple[int, dict[str, Any]]:
    """The ``/readyz`` status code and JSON body for a list of problems."""
    if problems:
        return 503, {"status": "not ready", "reasons": problems}
    return 200, {"status": "ready"}


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on their own port (threads, no asyncio)."""

    def __init__(self, host: str, port: int, readiness: Readiness) -> None:
        self._readiness = readiness
        handler = _handler_for(self._readiness)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> int:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="health-server", daemon=True
            )
            self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()


def _handler_for(readiness: Readiness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, content_type = metrics.render_latest()
                self._send(200, body, content_type)
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                self._json(*readiness_body(readiness()))
            else:
                self._json(404, {"error": f"no such path {path}"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes and probes every few seconds would flood the log

    return Handler
