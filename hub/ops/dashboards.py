"""Grafana dashboards of the hub, generated from a compact description.

``python -m hub.ops.dashboards`` writes ``deploy/grafana/dashboards/*.json``; ``--check``
fails when they differ from what this module generates. The tests check every metric
name in every expression against a live hub's and a live broker's ``/metrics``, and let
a real Prometheus evaluate every expression, so a dashboard cannot show a metric the code
does not export.

Expressions use Grafana's variables: ``$__rate_interval`` for rate windows and
``$resource``, ``$tier``, ``$instance`` as regular-expression matchers (``=~``), so
"All" is ``.*``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path("deploy/grafana/dashboards")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
ROLE_JOBS = 'job=~"govhub-(api|router|gateway)"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    width: int = 12


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # label_values(metric, label)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[Panel, ...]], ...]
    variables: tuple[Variable, ...] = field(default_factory=tuple)

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def per_second(metric: str, by: str = "", matchers: str = "", fn: str = "rate") -> str:
    """``sum [by (...)] (rate(metric{matchers}[$__rate_interval]))``."""
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    aggregate = f"sum by ({by}) " if by else "sum"
    return f"{aggregate}({fn}({selector}[{RATE}]))"


def quantile(metric: str, phi: float, by: str = "", matchers: str = "") -> str:
    """histogram_quantile over a histogram's buckets, optionally kept apart ``by`` labels."""
    labels = f"le, {by}" if by else "le"
    return (
        f"histogram_quantile({phi}, sum by ({labels}) "
        f"(rate({metric}_bucket{{{matchers}}}[{RATE}])))"
    )


RESOURCE = Variable(
    "resource", "resource", "label_values(govhub_router_records_in_total, resource)"
)
TIER = Variable("tier", "tier", "label_values(govhub_router_deliveries_total, tier)")
BROKER = Variable("instance", "broker", 'label_values(up{job="kafka"}, instance)')

OVERVIEW = Dashboard(
    uid="govhub-overview",
    title="GovHub / Exchange overview",
    description="The whole exchange path: ingest, routing, delivery, control plane, roles.",
    rows=(
        (
            "Roles",
            (
                Panel(
                    "Instances up",
                    (q('sum by (job) (up{job=~"govhub-.*"})', "{{job}}"),),
                    kind="stat",
                    width=8,
                ),
                Panel(
                    "Instances ready",
                    (
                        q(
                            f"sum by (job) (govhub_ready{{{ROLE_JOBS}}})",
                            "{{job}}",
                        ),
                    ),
                    kind="stat",
                    width=8,
                ),
                Panel(
                    "Broker reachable",
                    (
                        q(
                            f"min by (job) (govhub_broker_reachable{{{ROLE_JOBS}}})",
                            "{{job}}",
                        ),
                    ),
                    kind="stat",
                    width=8,
                ),
            ),
        ),
        (
            "Exchange",
            (
                Panel(
                    "Records in and routed",
                    (
                        q(
                            f"sum(rate(govhub_connector_records_published_total[{RATE}]))",
                            "published by connectors",
                        ),
                        q(f"sum(rate(govhub_router_records_in_total[{RATE}]))", "routed"),
                        q(
                            f"sum(rate(govhub_router_unrouted_records_total[{RATE}]))",
                            "no subscriber",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Deliveries by tier",
                    (
                        q(
                            f"sum by (tier) (rate(govhub_router_deliveries_total[{RATE}]))",
                            "{{tier}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Frames and frame bytes",
                    (
                        q(f"sum(rate(govhub_router_frames_total[{RATE}]))", "frames/s"),
                        q(f"sum(rate(govhub_router_frame_bytes_total[{RATE}]))", "bytes/s"),
                    ),
                ),
                Panel(
                    "Dead letters and rejects",
                    (
                        q(
                            f"sum by (reason) (rate(govhub_router_dead_letters_total[{RATE}]))",
                            "router: {{reason}}",
                        ),
                        q(
                            f"sum by (reason) "
                            f"(rate(govhub_connector_records_rejected_total[{RATE}]))",
                            "connector: {{reason}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Router lag by source topic",
                    (q("max by (topic) (govhub_router_lag_records)", "{{topic}}"),),
                ),
                Panel(
                    "Ingest to frame latency",
                    (
                        q(quantile("govhub_router_ingest_to_frame_seconds", 0.5), "p50"),
                        q(quantile("govhub_router_ingest_to_frame_seconds", 0.99), "p99"),
                    ),
                    unit="s",
                ),
                Panel(
                    "Latency objective: records slower than 5 s",
                    (
                        q("govhub:ingest_to_frame_slow:ratio_rate5m", "5m"),
                        q("govhub:ingest_to_frame_slow:ratio_rate1h", "1h"),
                        q("govhub:ingest_to_frame_slow:ratio_rate6h", "6h"),
                    ),
                    unit="percentunit",
                    description="Error budget: 1% (deploy/prometheus/rules/govhub-slo.yml).",
                ),
                Panel(
                    "End-to-end latency at subscribers",
                    (q(quantile("govhub_subscriber_end_to_end_seconds", 0.99), "p99"),),
                    unit="s",
                    description="Reported by subscriber SDK processes that export metrics.",
                ),
            ),
        ),
        (
            "Router transactions",
            (
                Panel(
                    "Commit time",
                    (
                        q(quantile("govhub_router_transaction_commit_seconds", 0.5), "p50"),
                        q(quantile("govhub_router_transaction_commit_seconds", 0.99), "p99"),
                    ),
                    unit="s",
                ),
                Panel(
                    "Aborts by reason",
                    (
                        q(
                            f"sum by (reason) "
                            f"(increase(govhub_router_transaction_aborts_total[{RATE}]))",
                            "{{reason}}",
                        ),
                    ),
                ),
                Panel(
                    "Router time by stage",
                    (
                        q(
                            f"sum by (stage) (rate(govhub_router_stage_seconds_total[{RATE}]))",
                            "{{stage}}",
                        ),
                    ),
                    unit="percentunit",
                    description="Seconds per second spent in each stage (1 = one core).",
                ),
                Panel(
                    "Records per transaction",
                    (q(quantile("govhub_router_transaction_records", 0.5), "p50"),),
                ),
            ),
        ),
        (
            "Control plane",
            (
                Panel(
                    "Key releases by outcome",
                    (
                        q(
                            f"sum by (outcome) (rate(govhub_api_key_releases_total[{RATE}]))",
                            "{{outcome}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "API requests by status",
                    (
                        q(
                            f"sum by (status) (rate(govhub_api_requests_total[{RATE}]))",
                            "{{status}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Subscriptions by state",
                    (q("max by (state) (govhub_subscriptions_requests)", "{{state}}"),),
                ),
                Panel(
                    "Requests past their deadline",
                    (q("max by (stage) (govhub_subscriptions_overdue)", "{{stage}}"),),
                ),
            ),
        ),
    ),
)

PER_RESOURCE = Dashboard(
    uid="govhub-resource",
    title="GovHub / Per resource",
    description="One catalogue resource (or several): its ingest, routing and latency.",
    variables=(RESOURCE,),
    rows=(
        (
            "Flow",
            (
                Panel(
                    "Records routed",
                    (
                        q(
                            f"sum by (resource) (rate(govhub_router_records_in_total"
                            f'{{resource=~"$resource"}}[{RATE}]))',
                            "{{resource}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Records published by connectors",
                    (
                        q(
                            f"sum by (resource) (rate(govhub_connector_records_published_total"
                            f'{{resource=~"$resource"}}[{RATE}]))',
                            "{{resource}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Deliveries by tier",
                    (
                        q(
                            f"sum by (resource, tier) (rate(govhub_router_deliveries_total"
                            f'{{resource=~"$resource"}}[{RATE}]))',
                            "{{resource}} → {{tier}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Frame bytes by tier",
                    (
                        q(
                            f"sum by (resource, tier) (rate(govhub_router_frame_bytes_total"
                            f'{{resource=~"$resource"}}[{RATE}]))',
                            "{{resource}} → {{tier}}",
                        ),
                    ),
                    unit="Bps",
                ),
                Panel(
                    "Records without a subscriber",
                    (
                        q(
                            f"sum by (resource) (rate(govhub_router_unrouted_records_total"
                            f'{{resource=~"$resource"}}[{RATE}]))',
                            "{{resource}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Active routes",
                    (
                        q(
                            'max by (resource) (govhub_router_routes{resource=~"$resource"})',
                            "{{resource}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Latency and lag",
            (
                Panel(
                    "Ingest to frame p99",
                    (
                        q(
                            quantile(
                                "govhub_router_ingest_to_frame_seconds",
                                0.99,
                                "resource",
                                'resource=~"$resource"',
                            ),
                            "{{resource}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Router lag",
                    (
                        q(
                            'max by (topic) (govhub_router_lag_records{topic=~".*$resource"})',
                            "{{topic}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

PER_TIER = Dashboard(
    uid="govhub-tier",
    title="GovHub / Per recipient tier",
    description="Recipients aggregated by administrative level (department, street, "
    "community, ...): what they get and how far behind they are.",
    variables=(TIER,),
    rows=(
        (
            "Routing",
            (
                Panel(
                    "Deliveries by resource",
                    (
                        q(
                            f"sum by (tier, resource) (rate(govhub_router_deliveries_total"
                            f'{{tier=~"$tier"}}[{RATE}]))',
                            "{{tier}}: {{resource}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Frames",
                    (
                        q(
                            f'sum by (tier) (rate(govhub_router_frames_total{{tier=~"$tier"}}'
                            f"[{RATE}]))",
                            "{{tier}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Delivery",
            (
                Panel(
                    "Connected subscribers",
                    (
                        q(
                            'sum by (tier, protocol) (govhub_gateway_subscribers{tier=~"$tier"})',
                            "{{tier}} {{protocol}}",
                        ),
                    ),
                ),
                Panel(
                    "Records sent",
                    (
                        q(
                            f"sum by (tier) (rate(govhub_gateway_records_sent_total"
                            f'{{tier=~"$tier"}}[{RATE}]))',
                            "{{tier}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Oldest unsent frame",
                    (
                        q(
                            "max by (tier, stat) "
                            '(govhub_gateway_subscriber_lag_seconds{tier=~"$tier"})',
                            "{{tier}} {{stat}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Frames queued per subscriber",
                    (
                        q(
                            "max by (tier, stat) "
                            '(govhub_gateway_subscriber_lag_frames{tier=~"$tier"})',
                            "{{tier}} {{stat}}",
                        ),
                    ),
                ),
                Panel(
                    "Frame latency p99 (delivery topic to send)",
                    (
                        q(
                            quantile(
                                "govhub_gateway_frame_latency_seconds",
                                0.99,
                                "tier",
                                'tier=~"$tier"',
                            ),
                            "{{tier}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Time paced by rate limits",
                    (
                        q(
                            f"sum by (tier) (rate(govhub_gateway_throttled_seconds_total"
                            f'{{tier=~"$tier"}}[{RATE}]))',
                            "{{tier}}",
                        ),
                    ),
                    unit="s",
                ),
            ),
        ),
    ),
)

GATEWAY = Dashboard(
    uid="govhub-gateway",
    title="GovHub / Gateway",
    description="Streams to subscribers: connections, throughput, catch-up, partitions.",
    rows=(
        (
            "Connections",
            (
                Panel(
                    "Subscribers by protocol",
                    (q("sum by (protocol) (govhub_gateway_subscribers)", "{{protocol}}"),),
                ),
                Panel(
                    "Stream requests by outcome",
                    (
                        q(
                            f"sum by (outcome) (rate(govhub_gateway_connects_total[{RATE}]))",
                            "{{outcome}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Disconnects by reason",
                    (
                        q(
                            f"sum by (reason) (rate(govhub_gateway_disconnects_total[{RATE}]))",
                            "{{reason}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Partitions owned and tailed",
                    (
                        q(
                            "sum by (instance) (govhub_gateway_owned_partitions)",
                            "owned {{instance}}",
                        ),
                        q(
                            "sum by (instance) (govhub_gateway_tail_partitions)",
                            "tailed {{instance}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Throughput",
            (
                Panel(
                    "Frames sent",
                    (
                        q(
                            f"sum by (protocol) (rate(govhub_gateway_frames_sent_total[{RATE}]))",
                            "{{protocol}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Bytes sent",
                    (
                        q(
                            f"sum by (protocol) (rate(govhub_gateway_bytes_sent_total[{RATE}]))",
                            "{{protocol}}",
                        ),
                    ),
                    unit="Bps",
                ),
                Panel(
                    "Frames read: live tail and catch-up",
                    (
                        q(f"sum(rate(govhub_gateway_live_frames_read_total[{RATE}]))", "live"),
                        q(
                            f"sum(rate(govhub_gateway_catchup_frames_read_total[{RATE}]))",
                            "catch-up",
                        ),
                        q(
                            f"sum(rate(govhub_gateway_catchup_scans_total[{RATE}]))",
                            "catch-up scans",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Frame latency",
                    (
                        q(quantile("govhub_gateway_frame_latency_seconds", 0.5), "p50"),
                        q(quantile("govhub_gateway_frame_latency_seconds", 0.99), "p99"),
                    ),
                    unit="s",
                ),
                Panel(
                    "Invalid records in the delivery topic",
                    (q(f"sum(rate(govhub_gateway_invalid_frames_total[{RATE}]))", "skipped"),),
                    unit="rps",
                ),
            ),
        ),
    ),
)

CONNECTORS = Dashboard(
    uid="govhub-connectors",
    title="GovHub / Connectors",
    description="Department-side sources: read, published, rejected, lag and checkpoints.",
    rows=(
        (
            "Records",
            (
                Panel(
                    "Read, published, rejected",
                    (
                        q(
                            f"sum by (connector) "
                            f"(rate(govhub_connector_records_read_total[{RATE}]))",
                            "read {{connector}}",
                        ),
                        q(
                            f"sum by (connector) "
                            f"(rate(govhub_connector_records_published_total[{RATE}]))",
                            "published {{connector}}",
                        ),
                        q(
                            f"sum by (connector) "
                            f"(rate(govhub_connector_records_rejected_total[{RATE}]))",
                            "rejected {{connector}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Rejects by reason",
                    (
                        q(
                            per_second("govhub_connector_records_rejected_total", "reason"),
                            "{{reason}}",
                        ),
                    ),
                    unit="rps",
                ),
            ),
        ),
        (
            "Progress",
            (
                Panel(
                    "Lag behind the source",
                    (q("max by (connector) (govhub_connector_lag)", "{{connector}}"),),
                ),
                Panel(
                    "Seconds since the last checkpoint",
                    (
                        q(
                            "max by (connector) (govhub_connector_checkpoint_age_seconds)",
                            "{{connector}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Batch publish time p99",
                    (
                        q(
                            quantile("govhub_connector_batch_seconds", 0.99, "connector"),
                            "{{connector}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "HTTP source requests by status",
                    (
                        q(
                            f"sum by (status) (rate(govhub_connector_http_requests_total[{RATE}]))",
                            "{{status}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Dropped files by outcome",
                    (
                        q(
                            f"sum by (outcome) (increase(govhub_connector_files_total[{RATE}]))",
                            "{{outcome}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

KAFKA = Dashboard(
    uid="govhub-kafka",
    title="GovHub / Kafka brokers",
    description="The cluster under the hub (JMX exporter agent on every broker).",
    variables=(BROKER,),
    rows=(
        (
            "Health",
            (
                Panel(
                    "Under-replicated partitions",
                    (
                        q(
                            "sum(kafka_server_replicamanager_underreplicatedpartitions"
                            '{instance=~"$instance"})'
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Under min ISR",
                    (
                        q(
                            "sum(kafka_server_replicamanager_underminisrpartitioncount"
                            '{instance=~"$instance"})'
                        ),
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Offline partitions",
                    (q("max(kafka_controller_kafkacontroller_offlinepartitionscount)"),),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Active controllers",
                    (q("sum(kafka_controller_kafkacontroller_activecontrollercount)"),),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "ISR shrinks and expands",
                    (
                        q(
                            per_second(
                                "kafka_server_replicamanager_isrshrinkspersec_total",
                                "instance",
                                'instance=~"$instance"',
                            ),
                            "shrinks {{instance}}",
                        ),
                        q(
                            per_second(
                                "kafka_server_replicamanager_isrexpandspersec_total",
                                "instance",
                                'instance=~"$instance"',
                            ),
                            "expands {{instance}}",
                        ),
                    ),
                ),
                Panel(
                    "Partitions and leaders",
                    (
                        q(
                            "sum by (instance) (kafka_server_replicamanager_partitioncount"
                            '{instance=~"$instance"})',
                            "partitions {{instance}}",
                        ),
                        q(
                            "sum by (instance) (kafka_server_replicamanager_leadercount"
                            '{instance=~"$instance"})',
                            "leaders {{instance}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Traffic",
            (
                Panel(
                    "Messages in",
                    (
                        q(
                            per_second(
                                "kafka_server_brokertopicmetrics_messagesinpersec_total",
                                "instance",
                                'instance=~"$instance"',
                            ),
                            "{{instance}}",
                        ),
                    ),
                    unit="rps",
                ),
                Panel(
                    "Bytes in and out",
                    (
                        q(
                            per_second(
                                "kafka_server_brokertopicmetrics_bytesinpersec_total",
                                "instance",
                                'instance=~"$instance"',
                            ),
                            "in {{instance}}",
                        ),
                        q(
                            per_second(
                                "kafka_server_brokertopicmetrics_bytesoutpersec_total",
                                "instance",
                                'instance=~"$instance"',
                            ),
                            "out {{instance}}",
                        ),
                    ),
                    unit="Bps",
                ),
                Panel(
                    "Requests by type",
                    (
                        q(
                            f"sum by (request) (rate(kafka_network_requestmetrics_requests_total"
                            f'{{instance=~"$instance"}}[{RATE}]))',
                            "{{request}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Request total time p99",
                    (
                        q(
                            "max by (request) (kafka_network_requestmetrics_totaltimems"
                            '{instance=~"$instance", quantile="0.99", '
                            'request=~"Produce|FetchConsumer|FetchFollower|EndTxn"})',
                            "{{request}}",
                        ),
                    ),
                    unit="ms",
                ),
                Panel(
                    "Request queue and idle",
                    (
                        q(
                            "max by (instance) (kafka_network_requestchannel_requestqueuesize"
                            '{instance=~"$instance"})',
                            "queue {{instance}}",
                        ),
                        q(
                            "min by (instance) "
                            "(kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent"
                            '{instance=~"$instance"})',
                            "handler idle {{instance}}",
                        ),
                        q(
                            "min by (instance) "
                            "(kafka_network_socketserver_networkprocessoravgidlepercent"
                            '{instance=~"$instance"})',
                            "network idle {{instance}}",
                        ),
                    ),
                ),
                Panel(
                    "Failed requests",
                    (
                        q(
                            f"sum(rate(kafka_server_brokertopicmetrics_failedproducerequestspersec_total"
                            f'{{instance=~"$instance"}}[{RATE}]))',
                            "produce",
                        ),
                        q(
                            f"sum(rate(kafka_server_brokertopicmetrics_failedfetchrequestspersec_total"
                            f'{{instance=~"$instance"}}[{RATE}]))',
                            "fetch",
                        ),
                    ),
                    unit="reqps",
                ),
            ),
        ),
        (
            "Disk and JVM",
            (
                Panel(
                    "Log flushes and p99 flush time",
                    (
                        q(
                            per_second(
                                "kafka_log_logflushstats_flushes_total",
                                "instance",
                                'instance=~"$instance"',
                            ),
                            "flushes/s {{instance}}",
                        ),
                        q(
                            "max by (instance) (kafka_log_logflushstats_flush_time_ms"
                            '{instance=~"$instance", quantile="0.99"})',
                            "p99 ms {{instance}}",
                        ),
                    ),
                ),
                Panel(
                    "Heap used",
                    (
                        q(
                            'sum by (instance) (jvm_memory_used_bytes{area="heap", '
                            'instance=~"$instance"})',
                            "{{instance}}",
                        ),
                    ),
                    unit="bytes",
                ),
                Panel(
                    "GC time",
                    (
                        q(
                            per_second(
                                "jvm_gc_collection_seconds_sum", "instance", 'instance=~"$instance"'
                            ),
                            "{{instance}}",
                        ),
                    ),
                    unit="percentunit",
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (OVERVIEW, PER_RESOURCE, PER_TIER, GATEWAY, CONNECTORS, KAFKA)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, height: int) -> dict[str, Any]:
    targets = [
        {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": True,
        }
        for i, query in enumerate(panel.queries)
    ]
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
    }
    if panel.kind == "stat":
        body["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
        }
    else:
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return body


def _variable_json(variable: Variable) -> dict[str, Any]:
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": variable.query, "refId": f"{variable.name}-values"},
        "definition": variable.query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard JSON model (schema version 39, Grafana 10 and later)."""
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row_title, row_panels in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        for panel in row_panels:
            height = 4 if panel.kind == "stat" else 8
            if x + panel.width > 24:
                x = 0
                y += 8
            panels.append(_panel_json(panel, panel_id, x, y, height))
            panel_id += 1
            x += panel.width
        y += 8
    datasource_variable = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["govhub"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "links": [
            {
                "type": "dashboards",
                "tags": ["govhub"],
                "asDropdown": True,
                "title": "GovHub dashboards",
            }
        ],
        "templating": {
            "list": [datasource_variable, *(_variable_json(v) for v in dashboard.variables)]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def dump(dashboard: Dashboard) -> str:
    return json.dumps(render(dashboard), indent=2, ensure_ascii=False) + "\n"


def expressions(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard JSON: panel targets and variable queries."""
    found = [
        str(target["expr"])
        for panel in document.get("panels", [])
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in document.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict) and str(query.get("query", "")).startswith("label_values("):
            inner = str(query["query"])[len("label_values(") : -1]
            found.append(inner.rsplit(",", 1)[0].strip())
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub.ops.dashboards", description="write or check the Grafana dashboards"
    )
    parser.add_argument("--output", type=Path, default=DASHBOARD_DIR)
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for dashboard in DASHBOARDS:
        path = args.output / dashboard.filename
        text = dump(dashboard)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            args.output.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale dashboards (run `make dashboards`): " + ", ".join(stale), file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {len(DASHBOARDS)} dashboards into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
