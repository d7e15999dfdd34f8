"""Prometheus metrics of every role (design §10).

Names follow ``govhub_<role>_<thing>_<unit>``. Labels are bounded: resource, department,
tier (the recipient's administrative level), reason — never an individual recipient.
"""

from __future__ import annotations

import threading
from typing import Any

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
ROLE_RESTARTS = Counter(
    "govhub_role_restarts_total",
    "Times a transactional role (router, audit notary) started again in its process "
    "after a fatal Kafka producer error",
    ["role"],
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
ROUTER_STAGE_SECONDS = Counter(
    "govhub_router_stage_seconds_total",
    "Router time by stage: consume, policy (catch-up and compile), route (headers, "
    "routing, decode/splice, projection and masking, entry encoding), encrypt, produce, "
    "commit",
    ["stage"],
)
ROUTER_BATCH_RECORDS = Histogram(
    "govhub_router_transaction_records",
    "Source records per router transaction",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000),
)
ROUTER_LAG = Gauge(
    "govhub_router_lag_records",
    "Source records not yet routed (high watermark minus position), by source topic",
    ["topic"],
)
ROUTER_KEY_ROTATIONS = Counter(
    "govhub_router_key_rotations_total",
    "Recipient data keys retired early, by cause (policy-change, key-deleted)",
    ["cause"],
)
ROUTER_AUDIT_RECORDS = Counter(
    "govhub_router_audit_records_total", "Delivery audit records written with the frames"
)

# -- audit -----------------------------------------------------------------------------------
AUDIT_EVENTS_WRITTEN = Counter(
    "govhub_audit_events_written_total",
    "Control audit events produced (delivery events count in the router's metric)",
    ["role", "kind"],
)
AUDIT_WRITE_FAILURES = Counter(
    "govhub_audit_write_failures_total",
    "Audit events the broker did not acknowledge (logged with the error)",
    ["role"],
)
AUDIT_LINKS = Counter(
    "govhub_audit_chain_links_total", "Audit events the notary appended to the hash chain"
)
AUDIT_CHECKPOINTS = Counter(
    "govhub_audit_checkpoints_total", "Signed chain checkpoints the notary wrote"
)
AUDIT_NOTARY_TXN_SECONDS = Histogram(
    "govhub_audit_notary_transaction_seconds",
    "Time of one notary transaction (links, checkpoints, offsets)",
    buckets=LATENCY_BUCKETS,
)
API_LIMITED = Counter(
    "govhub_api_rejected_requests_total",
    "Requests refused with 429: over the party's rate or too many failed sign-ins",
    ["reason"],
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
CONNECTOR_RESTARTS = Counter(
    "govhub_connector_restarts_total",
    "Times the connector resumed from its last checkpoint after Kafka failed a batch",
    ["connector"],
)

# -- api -------------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "govhub_api_requests_total", "HTTP requests served", ["route", "method", "status"]
)
RETIRED_KEK_UNWRAPS = Counter(
    "govhub_kms_retired_kek_unwraps_total",
    "Keys unwrapped under a retired KEK (rewrap them before destroying that KEK)",
    ["kek_id"],
)
API_KEY_RELEASES = Counter(
    "govhub_api_key_releases_total", "Data-key release requests", ["outcome"]
)
CONSOLE_SIGNINS = Counter(
    "govhub_api_console_signins_total",
    "Web console sign-ins by outcome (signed-in, unknown-token, suspended, no-certificate, csrf)",
    ["outcome"],
)
CONSOLE_ACTIONS = Counter(
    "govhub_api_console_actions_total",
    "Web console form actions (operation: request, approve, reject, revoke) by outcome (done, "
    "invalid, refused, csrf)",
    ["operation", "outcome"],
)
CONSOLE_LIVE_STREAMS = Gauge(
    "govhub_api_console_live_streams", "Browsers connected to the console's live flow stream"
)
CONSOLE_LIVE_ERRORS = Counter(
    "govhub_api_console_live_errors_total",
    "Failures of the console's live flow reader (offsets, audit tail)",
)

# -- gateway ---------------------------------------------------------------------------------
GATEWAY_SUBSCRIBERS = Gauge(
    "govhub_gateway_subscribers",
    "Subscriber streams held by this gateway (long-poll: between polls too)",
    ["tier", "protocol"],
)
GATEWAY_FRAMES_SENT = Counter(
    "govhub_gateway_frames_sent_total", "Delivery frames sent to subscribers", ["tier", "protocol"]
)
GATEWAY_RECORDS_SENT = Counter(
    "govhub_gateway_records_sent_total",
    "Records sent to subscribers (entries of the frames sent)",
    ["tier"],
)
GATEWAY_BYTES_SENT = Counter(
    "govhub_gateway_bytes_sent_total",
    "Bytes written to subscriber connections (encoded events)",
    ["tier", "protocol"],
)
GATEWAY_LAG_SECONDS = Gauge(
    "govhub_gateway_subscriber_lag_seconds",
    "Age of the oldest frame a subscriber has not been sent yet, over the tier's subscribers",
    ["tier", "stat"],
)
GATEWAY_LAG_FRAMES = Gauge(
    "govhub_gateway_subscriber_lag_frames",
    "Frames queued for a subscriber and not sent yet, over the tier's subscribers",
    ["tier", "stat"],
)
GATEWAY_DISCONNECTS = Counter(
    "govhub_gateway_disconnects_total", "Subscriber streams ended, by reason", ["reason"]
)
GATEWAY_CATCHUP_SCANS = Counter(
    "govhub_gateway_catchup_scans_total",
    "Catch-up scans started (one reads a partition range for every stream behind the tail)",
)
GATEWAY_CATCHUP_READS = Counter(
    "govhub_gateway_catchup_frames_read_total", "Frames read by catch-up scans"
)
GATEWAY_LIVE_READS = Counter(
    "govhub_gateway_live_frames_read_total", "Frames read by the live tail consumer"
)
GATEWAY_THROTTLED_SECONDS = Counter(
    "govhub_gateway_throttled_seconds_total",
    "Time streams waited to respect their subscription's rate_limit_per_s",
    ["tier"],
)
GATEWAY_CONNECTS = Counter(
    "govhub_gateway_connects_total",
    "Stream requests by outcome (served, redirected, refused with the reason)",
    ["outcome"],
)
GATEWAY_POLL_REQUESTS = Counter(
    "govhub_gateway_poll_requests_total",
    "Long-poll requests by the path that parsed them: lean (the gateway's own, for "
    "connections that begin with a long-poll) or aiohttp (connections that began otherwise)",
    ["path"],
)
GATEWAY_OWNED_PARTITIONS = Gauge(
    "govhub_gateway_owned_partitions", "Delivery partitions this gateway owns in its group"
)
GATEWAY_READ_PARTITIONS = Gauge(
    "govhub_gateway_tail_partitions", "Delivery partitions this gateway tails (owned or borrowed)"
)
GATEWAY_FRAME_LATENCY = Histogram(
    "govhub_gateway_frame_latency_seconds",
    "Time from the frame's write into the delivery topic to its send to the subscriber",
    ["tier"],
    buckets=LATENCY_BUCKETS,
)
GATEWAY_GC_PAUSE = Histogram(
    "govhub_gateway_gc_pause_seconds",
    "Pauses of the gateway process for cyclic garbage collection, by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
GATEWAY_INVALID_FRAMES = Counter(
    "govhub_gateway_invalid_frames_total",
    "Delivery-topic records that are not frames (skipped, never sent)",
)

# -- data service ----------------------------------------------------------------------------
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DATASERVICE_CALLS = Counter(
    "govhub_dataservice_calls_total",
    "Data-service calls by resource, kind (get, batch, list, verify) and outcome (ok, "
    "not-found, bad-request, unauthenticated, forbidden, rate-limited, quota, unavailable, "
    "error)",
    ["resource", "kind", "outcome"],
)
DATASERVICE_USAGE_WRITES = Counter(
    "govhub_dataservice_usage_writes_total",
    "Rows of this node's call counts written to the shared usage topic (daily quotas "
    "across nodes), by outcome (ok: rows written; failed: writes that failed and are "
    "retried with the next)",
    ["outcome"],
)
DATASERVICE_CALL_SECONDS = Histogram(
    "govhub_dataservice_call_seconds",
    "Time to answer a data-service call, from the request to the response body",
    ["kind"],
    buckets=CALL_BUCKETS,
)
DATASERVICE_STORE_RECORDS = Gauge(
    "govhub_dataservice_store_records", "Records in this node's materialised view", ["resource"]
)
DATASERVICE_STORE_BYTES = Gauge(
    "govhub_dataservice_store_bytes",
    "Estimated bytes of this node's materialised view (live data and memtables)",
    ["resource"],
)
DATASERVICE_REBUILD_PROGRESS = Gauge(
    "govhub_dataservice_rebuild_progress_ratio",
    "Share of the source records present at start that the view has read (1: loaded)",
    ["resource"],
)
DATASERVICE_LAG = Gauge(
    "govhub_dataservice_lag_records",
    "Source records not yet in the view (high watermark minus position)",
    ["resource"],
)
DATASERVICE_FRESHNESS = Histogram(
    "govhub_dataservice_freshness_seconds",
    "Time from the source timestamp (govhub-ingested-at) until the record is queryable",
    ["resource"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DATASERVICE_RECORDS_APPLIED = Counter(
    "govhub_dataservice_records_applied_total",
    "Source records written into the view, by kind of change (put, delete)",
    ["resource", "kind"],
)
DATASERVICE_RECORDS_SKIPPED = Counter(
    "govhub_dataservice_records_skipped_total",
    "Source records the view could not key or place, by reason (no-key, no-region, "
    "undecodable); they stay in the source topic",
    ["resource", "reason"],
)
DATASERVICE_AUDIT_EVENTS = Counter(
    "govhub_dataservice_audit_events_total",
    "Call audit events handed to Kafka (produced) and lost in a failed write (failed)",
    ["outcome"],
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


class LatencyCounts:
    """Observations of one histogram child since the last flush, by bucket: hot paths
    count into these plain lists and hand them to Prometheus once a second (a labelled
    Prometheus update takes a lock and a bucket search each time)."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0

    def add_to(self, histogram: Any, bounds: tuple[float, ...]) -> None:
        buckets = getattr(histogram, "_buckets", None)
        if buckets is not None and len(buckets) == len(self.buckets):
            # prometheus_client keeps one non-cumulative counter per bucket and the sum.
            for slot, count in zip(buckets, self.buckets, strict=True):
                if count:
                    slot.inc(count)
            histogram._sum.inc(self.total)
            return
        for bound, count in zip(bounds, self.buckets, strict=True):  # any other client
            for _ in range(count):
                histogram.observe(bound)


def histogram_bounds(histogram: Any, default: tuple[float, ...]) -> tuple[float, ...]:
    """A histogram's bucket bounds, ``+Inf`` last (for :class:`LatencyCounts`)."""
    bounds = getattr(histogram, "_upper_bounds", None)
    if bounds:
        return tuple(float(b) for b in bounds)
    return (*default, float("inf"))


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
