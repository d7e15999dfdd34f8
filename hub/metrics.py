"""Prometheus metrics of every role (design §10).

Names follow ``govhub_<role>_<thing>_<unit>``. Labels are bounded: resource, department,
tier (the recipient's administrative level), reason — never an individual recipient.
"""

from __future__ import annotations

import threading

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# -- router ----------------------------------------------------------------------------------
ROUTER_RECORDS_IN = Counter(
    "govhub_router_records_in_total", "Source records consumed by the router", ["resource"]
)
ROUTER_DELIVERIES = Counter(
    "govhub_router_deliveries_total",
    "Record deliveries written into frames (one per record and entitled recipient)",
    ["resource", "tier"],
)
ROUTER_FRAMES = Counter(
    "govhub_router_frames_total", "Encrypted delivery frames written", ["resource", "tier"]
)
ROUTER_FRAME_BYTES = Counter(
    "govhub_router_frame_bytes_total", "Bytes of delivery frames written", ["resource", "tier"]
)
ROUTER_UNROUTED = Counter(
    "govhub_router_unrouted_records_total",
    "Source records that matched no active subscription",
    ["resource"],
)
ROUTER_DEAD_LETTERS = Counter(
    "govhub_router_dead_letters_total", "Records sent to a dead-letter topic", ["reason"]
)
ROUTER_TXN_SECONDS = Histogram(
    "govhub_router_transaction_commit_seconds",
    "Time to commit one router transaction",
    buckets=LATENCY_BUCKETS,
)
ROUTER_TXN_ABORTS = Counter(
    "govhub_router_transaction_aborts_total", "Router transactions aborted", ["reason"]
)
ROUTER_KEYS_CREATED = Counter(
    "govhub_router_data_keys_created_total", "Recipient data keys created", ["suite"]
)
ROUTER_ROUTE_LATENCY = Histogram(
    "govhub_router_ingest_to_frame_seconds",
    "Time from ingest at the connector to the frame commit",
    ["resource"],
    buckets=LATENCY_BUCKETS,
)
ROUTER_ROUTING_TABLES = Gauge(
    "govhub_router_routes", "Active routes in the compiled routing tables", ["resource"]
)

# -- connectors ------------------------------------------------------------------------------
CONNECTOR_RECORDS_READ = Counter(
    "govhub_connector_records_read_total", "Records read from the source", ["connector"]
)
CONNECTOR_RECORDS_PUBLISHED = Counter(
    "govhub_connector_records_published_total",
    "Records acknowledged by Kafka",
    ["connector", "resource"],
)
CONNECTOR_RECORDS_REJECTED = Counter(
    "govhub_connector_records_rejected_total",
    "Records rejected to the dead-letter topic",
    ["connector", "reason"],
)
CONNECTOR_LAG = Gauge(
    "govhub_connector_lag",
    "How far the connector is behind its source (source units)",
    ["connector"],
)
CONNECTOR_BATCH_SECONDS = Histogram(
    "govhub_connector_batch_seconds",
    "Time to publish one batch until Kafka acknowledged it and the checkpoint was written",
    ["connector"],
    buckets=LATENCY_BUCKETS,
)
CONNECTOR_CHECKPOINT_AGE = Gauge(
    "govhub_connector_checkpoint_age_seconds", "Seconds since the last checkpoint", ["connector"]
)

# -- api -------------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "govhub_api_requests_total", "HTTP requests served", ["route", "method", "status"]
)
API_KEY_RELEASES = Counter(
    "govhub_api_key_releases_total", "Data-key release requests", ["outcome"]
)

# -- subscriber SDK --------------------------------------------------------------------------
SDK_FRAMES = Counter(
    "govhub_subscriber_frames_total", "Frames received by the subscriber SDK", ["outcome"]
)
SDK_RECORDS = Counter(
    "govhub_subscriber_records_total", "Records written to the sink by the subscriber SDK"
)
SDK_E2E_LATENCY = Histogram(
    "govhub_subscriber_end_to_end_seconds",
    "Time from ingest at the connector to the write into the subscriber's sink",
    buckets=LATENCY_BUCKETS,
)


def render_latest() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_started: dict[tuple[str, int], int] = {}
_lock = threading.Lock()


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Expose ``/metrics`` on its own port (roles that do not run the api); returns the
    bound port (``port=0`` picks a free one)."""
    with _lock:
        bound = _started.get((host, port))
        if bound is None:
            server, _ = start_http_server(port, addr=host)
            bound = _started[(host, port)] = int(server.server_port)
        return bound
