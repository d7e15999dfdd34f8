"""Monitoring end to end, with the real tools: a Kafka broker carrying the JMX exporter
agent, the hub's three roles as separate `govhub serve` processes, a connector and a
gateway subscriber under a small load, and a real Prometheus server (Debian package)
scraping all of it with the committed scrape jobs and alert rules.

Checked through Prometheus's HTTP API: every target is up, the key series exist and agree
with what the processes did, every recording and alert rule evaluates without error and
none fires on a healthy hub, and every dashboard expression evaluates — returning data
whenever the metrics it uses have samples. The dashboards' metric names are checked
against the live /metrics of every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.base import SourceRecord
from connectors.publisher import Publisher
from connectors.registry import default_registry
from connectors.sdk.gateway import GatewaySettings, GatewaySubscriber
from connectors.sinks.jsonl import JsonlSink
from hub import kafka, metrics
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.samples import load_sample
from hub.config import load_config
from hub.controlstate import CompactedTable
from hub.crypto.kms import LocalFileKms
from hub.demo.world import build_members, build_subscriptions, generate_records, provision
from hub.localkafka import LocalKafka, find_free_base_port
from hub.ops.dashboards import DASHBOARD_DIR, expressions
from hub.state import ControlState
from tests.kafka_fixtures import wait_for_metadata
from tests.ops.tools import (
    PROMETHEUS_DIR,
    ROOT,
    PrometheusApi,
    exposed_names,
    free_port,
    http_get,
    metric_names,
    require_tool,
)

pytestmark = pytest.mark.integration

RECORDS = 300
SCRAPE = "1s"
EXPORTER_URL_ENV = "GOVHUB_TEST_KAFKA_METRICS_URL"
JOBS = ("govhub-api", "govhub-router", "govhub-gateway", "govhub-connectors", "kafka")
# Series Prometheus writes itself for every target.
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$resource": ".*",
    "$tier": ".*",
    "$instance": ".*",
}


@dataclass
class MonitoredHub:
    prometheus: PrometheusApi
    targets: dict[str, str]  # job -> host:port
    published: int
    subscriber_records: int
    subscriber_keys: int
    rule_names: set[str]
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def metrics_text(self, job: str) -> str:
        status, body = http_get(f"http://{self.targets[job]}/metrics")
        assert status == 200, (job, status)
        return body.decode()


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


# -- the broker with the JMX exporter -----------------------------------------------------------


@contextlib.contextmanager
def broker_with_exporter() -> Iterator[tuple[str, str]]:
    """``(bootstrap, exporter host:port)``: an external pair from the environment, else a
    local broker started from the jars with the agent attached."""
    external = os.environ.get(EXPORTER_URL_ENV, "").strip()
    if external and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"], external.removeprefix("http://")
        return
    state_dir = Path(tempfile.mkdtemp(prefix="govhub-ops-kafka-"))
    base = find_free_base_port(1)
    exporter = free_port()
    cluster = LocalKafka(state_dir, base_port=base, heap_mb=384, metrics_port=exporter)
    try:
        bootstrap = cluster.up(timeout=180.0)
        if cluster.metrics_warning:
            pytest.fail(cluster.metrics_warning, pytrace=False)
        yield bootstrap, f"127.0.0.1:{exporter}"
    finally:
        cluster.down(timeout=15.0)
        shutil.rmtree(state_dir, ignore_errors=True)


# -- the hub's roles as processes ----------------------------------------------------------------


def start_role(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "--log-level", "WARNING", "serve", "--roles", role],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )


def wait_serving(role: str, proc: subprocess.Popen[str], log: Path) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "govhub serving" not in line:
        proc.wait(10)
        raise AssertionError(f"{role} did not start: {line!r} {log.read_text()[-2000:]}")


def stop_processes(processes: dict[str, subprocess.Popen[str]]) -> None:
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- Prometheus ----------------------------------------------------------------------------------


def prometheus_config(tmp: Path, targets: dict[str, str]) -> Path:
    """The committed scrape config and rules, with this test's targets and a 1 s pace."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(
        {"scrape_interval": SCRAPE, "scrape_timeout": SCRAPE, "evaluation_interval": SCRAPE}
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(JOBS), f"scrape jobs changed: {sorted(jobs)}"
    for name, job in jobs.items():
        job["static_configs"][0]["targets"] = [targets[name]]
    # The JMX exporter reads MBeans on every scrape: give it room on a busy machine.
    jobs["kafka"].update({"scrape_interval": "3s", "scrape_timeout": "3s"})
    rules = tmp / "rules"
    rules.mkdir()
    for source in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        document = yaml.safe_load(source.read_text())
        for group in document["groups"]:
            group.pop("interval", None)  # the test's 1 s pace for every group
        (rules / source.name).write_text(yaml.safe_dump(document, allow_unicode=True))
    config["rule_files"] = [str(rules / "*.yml")]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def prometheus_server(tmp: Path, config: Path) -> Iterator[PrometheusApi]:
    binary = require_tool("prometheus")
    port = free_port()
    log = tmp / "prometheus.log"
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    api = PrometheusApi(f"http://127.0.0.1:{port}")
    try:
        wait_until(
            "Prometheus to be ready",
            lambda: proc.poll() is None and http_get(f"{api.url}/-/ready", 1.0)[0] == 200,
            timeout=30.0,
        )
        yield api
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.returncode not in (0, -signal.SIGTERM):
            print(log.read_text()[-3000:])


# -- load ----------------------------------------------------------------------------------------


def run_gateway_subscriber(settings: GatewaySettings, sink_path: Path, expect: int) -> Any:
    """Stream from the gateway until ``expect`` records arrived (30 s at most)."""
    client = GatewaySubscriber(settings, JsonlSink(sink_path))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        deadline = time.monotonic() + 30.0
        while client.records < expect and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    return client


@pytest.fixture(scope="module")
def monitored() -> Iterator[MonitoredHub]:
    tmp = Path(tempfile.mkdtemp(prefix="govhub-ops-monitoring-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        bootstrap, exporter = stack.enter_context(broker_with_exporter())
        wait_for_metadata(bootstrap)
        ports = {"api": free_port(), "router": free_port(), "gateway": free_port()}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            GOVHUB_TOPIC_PREFIX=f"ops{uuid.uuid4().hex[:8]}.",
            GOVHUB_STATE_DIR=str(tmp / "state"),
            GOVHUB_API_PORT=str(ports["api"]),
            GOVHUB_GATEWAY_PORT=str(ports["gateway"]),
        )
        config = load_config(env=env)
        LocalFileKms(config.crypto.kek_file, create=True)  # one KEK for every role
        processes: dict[str, subprocess.Popen[str]] = {}
        stack.callback(stop_processes, processes)
        for role in ("api", "router", "gateway"):
            metrics_port = ports["router"] if role == "router" else free_port()
            role_env = dict(env, GOVHUB_METRICS_PORT=str(metrics_port))
            processes[role] = start_role(role, role_env, tmp / f"{role}.log")
        for role, proc in processes.items():
            wait_serving(role, proc, tmp / f"{role}.log")

        # The world, written into the control topics as the api would.
        state = ControlState(config)
        state.start()
        stack.callback(state.stop)
        sample = load_sample("mzj.dibao")
        members = build_members()
        admin = kafka.admin_client(bootstrap)
        subscriptions = build_subscriptions(sample.resource.code)
        schema_id = provision(state, admin, sample, members, subscriptions)
        # This process is the connector host: like `govhub connector run`, it loads the
        # connector registry (every built-in source and its metrics), then publishes.
        default_registry()
        targets = {
            "govhub-api": f"127.0.0.1:{ports['api']}",
            "govhub-router": f"127.0.0.1:{ports['router']}",
            "govhub-gateway": f"127.0.0.1:{ports['gateway']}",
            "govhub-connectors": f"127.0.0.1:{metrics.serve_metrics(0)}",
            "kafka": exporter,
        }
        rule_names = {
            rule.get("record") or rule["alert"]
            for path in (PROMETHEUS_DIR / "rules").glob("*.yml")
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]
        }
        prometheus = stack.enter_context(prometheus_server(tmp, prometheus_config(tmp, targets)))
        # Load: a connector publishes, the router routes, the gateway streams to a
        # subscriber that fetches its key from the api and decrypts.
        checkpoints = CompactedTable(bootstrap, state.topics.connect_offsets)
        checkpoints.start()
        stack.callback(checkpoints.stop)
        publisher = Publisher(
            connector="ops-test",
            bootstrap_servers=bootstrap,
            topics=state.topics,
            resource=sample.resource,
            schema_id=schema_id,
            codec=state.registry.codec(schema_id),
            checkpoints=checkpoints,
            regions=PartyRegions(state.parties),
        )
        rows = generate_records(RECORDS, invalid=0)
        records = [SourceRecord(f"ops:{i}", row, {"n": i}) for i, row in enumerate(rows)]
        # Two waves, each seen by Prometheus before the next: the counters then rise
        # between scrapes, so rates (and the latency objective's ratios) are defined.
        for wave in (records[: RECORDS // 2], records[RECORDS // 2 :]):
            publisher.publish(wave)
            routed = int(wave[-1].position["n"]) + 1
            wait_until(
                f"Prometheus to see {routed} routed records",
                lambda n=routed: (
                    prometheus.value('sum(govhub_router_records_in_total{job="govhub-router"})')
                    == n
                ),
                timeout=90,  # the router's group join and first scrape on a loaded machine
            )
        publisher.close()
        member = members["rsj"]  # the department entitled to every row
        settings = GatewaySettings(
            gateway_urls=(f"http://{targets['govhub-gateway']}",),
            api_url=f"http://{targets['govhub-api']}",
            recipient="rsj",
            token=member.token,
            private_key=member.private_key,
        )
        client = run_gateway_subscriber(settings, tmp / "rsj.jsonl", RECORDS)
        for series in ("govhub_api_key_releases_total", "govhub_gateway_records_sent_total"):
            wait_until(  # a few scrapes after the last change, so rates have two samples
                f"{series} scraped after the load",
                lambda s=series: (prometheus.value(f"min(count_over_time({s}[1m]))") or 0) >= 3,
            )
        yield MonitoredHub(
            prometheus=prometheus,
            targets=targets,
            published=RECORDS,
            subscriber_records=client.records,
            subscriber_keys=client.keys_fetched,
            rule_names=rule_names,
            processes=processes,
        )


# -- the checks ----------------------------------------------------------------------------------


def test_prometheus_scrapes_every_role_and_the_broker(monitored: MonitoredHub) -> None:
    prom = monitored.prometheus
    wait_until("every target to be up", lambda: prom.value("count(up == 1)") == len(JOBS))
    for job in JOBS:
        assert prom.value(f'up{{job="{job}"}}') == 1.0, job
    for job in ("govhub-api", "govhub-router", "govhub-gateway"):
        wait_until(f"{job} ready", lambda j=job: prom.value(f'govhub_ready{{job="{j}"}}') == 1.0)
        assert prom.value(f'govhub_broker_reachable{{job="{job}"}}') == 1.0


def test_key_series_agree_with_what_the_processes_did(monitored: MonitoredHub) -> None:
    prom = monitored.prometheus
    published = monitored.published
    assert monitored.subscriber_records == published, "the subscriber did not get every row"

    def scraped(expr: str, expected: float) -> Callable[[], bool]:
        return lambda: prom.value(expr) == expected

    wait_until(
        "connector counts",
        scraped(
            'sum(govhub_connector_records_published_total{job="govhub-connectors",'
            ' connector="ops-test"})',
            published,
        ),
    )
    wait_until(
        "router counts",
        scraped('sum(govhub_router_records_in_total{job="govhub-router"})', published),
    )
    wait_until(
        "gateway counts",
        scraped(
            'sum(govhub_gateway_records_sent_total{job="govhub-gateway", tier="department"})',
            monitored.subscriber_records,
        ),
    )
    wait_until(
        "key releases",
        scraped(
            'sum(govhub_api_key_releases_total{job="govhub-api", outcome="released"})',
            monitored.subscriber_keys,
        ),
    )
    # Prometheus holds what the router process itself reports.
    router_text = monitored.metrics_text("govhub-router")
    exported = sum(
        float(line.rsplit(" ", 1)[1])
        for line in router_text.splitlines()
        if line.startswith("govhub_router_deliveries_total{")
    )
    assert exported >= published
    wait_until(
        "deliveries",
        scraped('sum(govhub_router_deliveries_total{job="govhub-router"})', exported),
    )
    tiers = {r["metric"]["tier"] for r in prom.query("govhub_router_deliveries_total")}
    assert "department" in tiers and len(tiers) > 1, tiers
    assert not any("recipient" in r["metric"] for r in prom.query("govhub_router_deliveries_total"))
    assert (prom.value("sum(govhub_router_frames_total)") or 0) > 0
    wait_until("the router to catch up", scraped("max(govhub_router_lag_records)", 0.0))
    p99 = prom.value(
        "histogram_quantile(0.99, sum by (le) (govhub_router_ingest_to_frame_seconds_bucket))"
    )
    assert p99 is not None and 0 < p99 <= 30, p99
    # The broker, through its JMX exporter.
    assert prom.value('kafka_server_replicamanager_underreplicatedpartitions{job="kafka"}') == 0
    assert prom.value('kafka_controller_kafkacontroller_activecontrollercount{job="kafka"}') == 1
    assert (prom.value("sum(kafka_server_brokertopicmetrics_messagesinpersec_total)") or 0) > 0
    assert (prom.value("sum(kafka_server_replicamanager_partitioncount)") or 0) > 0


def test_every_rule_evaluates_and_none_fires_on_a_healthy_hub(monitored: MonitoredHub) -> None:
    prom = monitored.prometheus

    def rules() -> list[dict[str, Any]]:
        groups = prom.get("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    wait_until(
        "every rule to be evaluated",
        lambda: all(rule["health"] != "unknown" for rule in rules()),
    )
    loaded = rules()
    assert {r["name"] for r in loaded} == monitored.rule_names
    broken = {r["name"]: r.get("lastError") for r in loaded if r["health"] != "ok"}
    assert not broken, broken
    # The objective's recorded ratio exists once records have flowed, and is a ratio.
    wait_until(
        "the latency ratio to be recorded",
        lambda: prom.value("govhub:ingest_to_frame_slow:ratio_rate5m") is not None,
    )
    ratio = prom.value("govhub:ingest_to_frame_slow:ratio_rate5m")
    assert ratio is not None and 0.0 <= ratio <= 1.0
    alerts = prom.get("/api/v1/alerts")["alerts"]
    firing = [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]
    assert firing == [], alerts
    # A scrape that times out on a busy machine may start a `for:` wait; nothing else may.
    pending = {a["labels"]["alertname"] for a in alerts if a["state"] == "pending"}
    assert pending <= {"GovHubRoleDown", "KafkaBrokerDown"}, alerts
    # Every alert expression, asked directly, is valid PromQL against live data.
    for rule in loaded:
        if rule["type"] == "alerting":
            prom.query(rule["query"])


def test_dashboards_use_only_exported_metrics(monitored: MonitoredHub) -> None:
    live: dict[str, int] = {}
    for job in JOBS:
        for name, samples in exposed_names(monitored.metrics_text(job)).items():
            live[name] = live.get(name, 0) + samples
    recorded = {n for n in monitored.rule_names if ":" in n}
    missing = {}
    for path in sorted((ROOT / DASHBOARD_DIR).glob("*.json")):
        for expr in expressions(json.loads(path.read_text())):
            unknown = metric_names(expr) - set(live) - recorded - SCRAPE_SERIES
            if unknown:
                missing.setdefault(path.name, []).append((expr, sorted(unknown)))
    assert not missing, json.dumps(missing, indent=2, ensure_ascii=False)


def test_every_dashboard_expression_evaluates(monitored: MonitoredHub) -> None:
    prom = monitored.prometheus
    live: dict[str, int] = {}
    for job in JOBS:
        for name, samples in exposed_names(monitored.metrics_text(job)).items():
            live[name] = live.get(name, 0) + samples
    recorded = {n for n in monitored.rule_names if ":" in n} | SCRAPE_SERIES
    wait_until(
        "the latency ratio to be recorded",
        lambda: prom.value("govhub:ingest_to_frame_slow:ratio_rate5m") is not None,
    )
    empty = []
    evaluated = 0
    for path in sorted((ROOT / DASHBOARD_DIR).glob("*.json")):
        for expr in expressions(json.loads(path.read_text())):
            query = expr
            for variable, value in SUBSTITUTIONS.items():
                query = query.replace(variable, value)
            result = prom.query(query)  # raises on a PromQL error
            evaluated += 1
            names = metric_names(expr)
            has_samples = all(live.get(n, 0) > 0 or n in recorded for n in names)
            if has_samples and not result:
                empty.append((path.name, expr, query))
    assert evaluated > 50
    # A rate needs two scrapes inside its window, and the broker's JMX target answers more
    # slowly than the hub's: give late series a few more scrapes before calling them empty.
    deadline = time.monotonic() + 30
    while empty and time.monotonic() < deadline:
        time.sleep(1)
        empty = [(name, expr, query) for name, expr, query in empty if not prom.query(query)]
    assert not empty, [(name, expr) for name, expr, _ in empty]
