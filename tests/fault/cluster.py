"""The whole hub on a three-node Kafka cluster, every part a process of its own.

- Kafka: three combined broker+controller nodes, replication factor 3 and
  ``min.insync.replicas=2`` for every topic (the local cluster's defaults at three nodes).
- The hub: the api, the audit notary, two routers and two gateways, each a
  ``govhub serve`` process; one ``govhub connector run`` process per department, each
  following a JSON-lines file the test appends to.
- The subscribers: every live recipient of the city world (1,000+), each a gateway
  subscriber of the SDK with its own token, key pair and sink, over SSE, WebSocket and
  NDJSON long-poll in turn, spread over both gateways. They run on an event loop of their
  own in this process.

The test inflicts faults on any of these processes, brokers included, and plays the
supervisor a deployment has: a hub process that ends on its own (a router's watchdog ends
it after a hung transactional call, by design) is started again, and that is reported.
What the sinks hold is checked against the entitlements, computed from the grants and the
rows alone (``cityworld``), never through the hub's policy code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from confluent_kafka.admin import AdminClient

from connectors.sdk.gateway import GatewaySettings, GatewaySubscriber
from connectors.sinks.base import Cursor, DeliveredRecord, Sink
from hub import kafka
from hub.audit.commands import published_key
from hub.audit.query import all_rows
from hub.audit.store import read_log
from hub.audit.verify import Anchors, Report, verify_log
from hub.config import isolated_config
from hub.localkafka import LocalKafka, find_free_base_port
from hub.localkafka.ports import first_taken
from hub.state import ControlState
from tests.conformance.harness import ConnectorProcess
from tests.fault.cityworld import CityWorld, SourceRow, build_city, entitlements, provision
from tests.fault.delivery_check import Published, _Schemas, examples, load_sources
from tests.fault.routers import ServeProcess, free_port

REPLICAS = 3
MIN_INSYNC = 2
# A killed broker registers again within seconds, a paused one is fenced after 2 s, and a
# follower that stops fetching leaves the in-sync replicas after 5 s.
BROKER_SETTINGS = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "2000",
    "replica.lag.time.max.ms": "5000",
}
# Transactions of at most 5,000 records or 250 ms: many of them in flight at any fault,
# and frames of a few records each for the thousand subscribers to open.
ROUTER_SETTINGS = {
    "consume_batch": 1000,
    "max_transaction_records": 5000,
    "transaction_interval_ms": 250,
    "session_timeout_ms": 6000,
}
GATEWAY_SETTINGS = {"session_timeout_ms": 6000, "position_interval_s": 2.0}
PROTOCOLS = ("sse", "ws", "poll")
TOKEN_COST = 10  # scrypt's lowest allowed cost: 1,000+ first sign-ins at the gateways and the api


def connector_name(resource: str) -> str:
    return f"fc-{resource}"


def with_connector_ids(rows: Sequence[SourceRow]) -> list[SourceRow]:
    """``rows`` under the ids the JSON-lines connector gives them:
    ``<connector>:<file>:<line>``, the line counted per resource's file."""
    lines: Counter[str] = Counter()
    out = []
    for row in rows:
        lines[row.resource] += 1
        record_id = f"{connector_name(row.resource)}:{row.resource}.jsonl:{lines[row.resource]}"
        out.append(replace(row, record_id=record_id))
    return out


# -- the cluster --------------------------------------------------------------------------
class Brokers:
    """The three nodes, with the faults the test inflicts on them."""

    def __init__(self, state_dir: Path) -> None:
        self.kafka = LocalKafka(
            state_dir,
            nodes=3,
            base_port=find_free_base_port(3),
            heap_mb=384,
            extra_config=BROKER_SETTINGS,
        )

    def up(self) -> str:
        return self.kafka.up(timeout=180)

    def pid(self, node_id: int) -> int:
        pid = self.kafka.running_pid(node_id)
        assert pid is not None, f"broker {node_id} is not running"
        return pid

    def leader_of(self, topic: str, partition: int = 0) -> int:
        admin = AdminClient({"bootstrap.servers": self.kafka.bootstrap_servers})
        meta = admin.list_topics(topic, timeout=10).topics[topic]
        return int(meta.partitions[partition].leader)

    def kill(self, node_id: int) -> None:
        """SIGKILL, and wait until the node is gone and its ports are free."""
        os.kill(self.pid(node_id), signal.SIGKILL)
        deadline = time.monotonic() + 20
        ports = self.kafka.layout.ports(node_id)
        while self.kafka.running_pid(node_id) is not None or first_taken(ports) is not None:
            assert time.monotonic() < deadline, f"broker {node_id} survived SIGKILL"
            time.sleep(0.05)

    def restart(self) -> None:
        """Start the nodes that are not running, on their data and ports."""
        self.kafka.up(timeout=120)

    @contextmanager
    def paused(self, node_id: int) -> Iterator[None]:
        """SIGSTOP the node for the block, SIGCONT after it."""
        pid = self.pid(node_id)
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def replication(self, topics: Sequence[str]) -> dict[str, set[int]]:
        """Replica counts per topic, as the cluster reports them."""
        admin = AdminClient({"bootstrap.servers": self.kafka.bootstrap_servers})
        meta = admin.list_topics(timeout=10).topics
        return {t: {len(p.replicas) for p in meta[t].partitions.values()} for t in topics}

    def down(self) -> None:
        self.kafka.down()


# -- the subscribers ------------------------------------------------------------------------
class MemorySink(Sink):
    """Keeps what the SDK hands over, with the cursor written with it."""

    def __init__(self) -> None:
        self.records: list[DeliveredRecord] = []
        self.cursor: Cursor | None = None

    def load_cursor(self) -> Cursor | None:
        return self.cursor

    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        self.records.extend(records)
        self.cursor = cursor


@dataclass
class Subscribers:
    """Every member's gateway subscriber, on an event loop of its own (a thread)."""

    world: CityWorld
    recipients: list[str]
    gateway_urls: tuple[str, ...]
    api_url: str
    sinks: dict[str, MemorySink] = field(default_factory=dict)
    clients: dict[str, GatewaySubscriber] = field(default_factory=dict)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="subscribers", daemon=True)
        self._started = threading.Event()

    def start(self) -> None:
        self._thread.start()
        assert self._started.wait(30), "the subscribers' loop did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(16))
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        tasks = []
        for i, recipient in enumerate(self.recipients):
            member = self.world.members[recipient]
            assert member.token is not None and member.private_key is not None
            urls = self.gateway_urls[i % 2 :] + self.gateway_urls[: i % 2]
            settings = GatewaySettings(
                gateway_urls=urls,
                api_url=self.api_url,
                recipient=recipient,
                token=member.token,
                private_key=member.private_key,
                protocol=PROTOCOLS[i % len(PROTOCOLS)],  # type: ignore[arg-type]
                poll_wait_s=5.0,
                reconnect_initial_s=0.2,
                reconnect_max_s=2.0,
            )
            sink = self.sinks[recipient] = MemorySink()
            client = self.clients[recipient] = GatewaySubscriber(settings, sink, http=http)
            tasks.append(asyncio.create_task(self._serve(recipient, client)))
        self._started.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.close()

    async def _serve(self, recipient: str, client: GatewaySubscriber) -> None:
        assert self._stop is not None
        try:
            await client.run(self._stop)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # every refusal is a finding of the test
            self.failures.append((recipient, exc))

    def delivered(self) -> int:
        return sum(len(sink.records) for sink in list(self.sinks.values()))

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def stats(self) -> dict[str, int]:
        clients = list(self.clients.values())
        return {
            "connects": sum(c.connects for c in clients),
            "redirects": sum(c.redirects for c in clients),
            "reconnects": sum(c.reconnects for c in clients),
        }


# -- feeding the connectors -----------------------------------------------------------------
class Feeder:
    """Appends rows to the connectors' JSON-lines files at a steady rate, on a thread, the
    way a department's export grows: whole lines, flushed in small batches."""

    def __init__(self, files: dict[str, Path], rate: float, batch: int = 250) -> None:
        self.files = files
        self.rate = rate
        self.batch = batch
        self.written = 0
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def feed(self, rows: Sequence[SourceRow]) -> None:
        assert self._thread is None or not self._thread.is_alive()
        self._thread = threading.Thread(target=self._write, args=(rows,), daemon=True)
        self._thread.start()

    def _write(self, rows: Sequence[SourceRow]) -> None:
        began = time.monotonic()
        handles = {code: path.open("ab") for code, path in self.files.items()}
        try:
            for start in range(0, len(rows), self.batch):
                ahead = began + start / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                lines: dict[str, list[bytes]] = defaultdict(list)
                for row in rows[start : start + self.batch]:
                    lines[row.resource].append(orjson.dumps(row.row) + b"\n")
                for code, chunk in lines.items():
                    handles[code].write(b"".join(chunk))
                    handles[code].flush()
                self.written += min(self.batch, len(rows) - start)
        except BaseException as exc:
            self.error = exc
        finally:
            for handle in handles.values():
                handle.close()

    def join(self, timeout: float = 120.0) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "feeding the connectors did not finish"
        assert self.error is None, f"feeding the connectors failed: {self.error!r}"


# -- the hub ----------------------------------------------------------------------------------
@dataclass
class Check:
    """What the sinks hold, compared with what the rows fed so far entitle."""

    records: int
    recipients: int
    entries: int
    problems: list[str]

    def summary(self) -> str:
        return (
            f"{self.records:,} records fed, {self.entries:,} deliveries to "
            f"{self.recipients:,} recipients"
        )


class ClusterHub:
    """The processes, the world, the subscribers; see the module's docstring."""

    def __init__(self, tmp: Path, counts: dict[str, int]) -> None:
        self.tmp = tmp
        self.counts = counts
        self.brokers = Brokers(tmp / "kafka")
        self.events: list[str] = []
        self.processes: dict[str, ServeProcess] = {}
        self.stopped: set[str] = set()  # taken down by the test: not for the supervisor
        self.connectors: dict[str, ConnectorProcess] = {}
        self._decoded: dict[str, dict[str, Any]] = {}

    # -- start ------------------------------------------------------------------------------
    def start(self, rate: float) -> None:
        bootstrap = self.brokers.up()
        prefix = f"fc{uuid.uuid4().hex[:8]}."
        self.config = isolated_config(bootstrap, prefix, self.tmp / "state")
        Path(self.config.state_dir).mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.gateway_ports = (free_port(), free_port())
        self.api = self._serve("api", "api", {"api": {"port": self.api_port}}).start()
        self.notary = self._serve("notary", "audit").start()

        self.state = ControlState(self.config)
        self.state.start()
        self.world = build_city(
            int(time.time() * 1000), all_credentials=True, token_cost=TOKEN_COST
        )
        admin = kafka.admin_client(bootstrap)
        self.schema_ids = provision(self.state, admin, self.world)
        self.topics = self.state.topics
        self.source_topics = {
            code: self.topics.source(s.resource.department, code)
            for code, s in self.world.samples.items()
        }

        for index in (0, 1):
            self._serve(
                f"router-{index}",
                "router",
                {"router": ROUTER_SETTINGS},
                {"GOVHUB_ROUTER_TRANSACTIONAL_ID": f"{prefix}router-{index}"},
            ).launch()
            port = self.gateway_ports[index]
            self._serve(
                f"gateway-{index}", "gateway", {"gateway": {"port": port, **GATEWAY_SETTINGS}}
            ).launch()
        for name in ("router-0", "router-1", "gateway-0", "gateway-1"):
            self.processes[name].wait_ready()

        self.files = {code: self.tmp / "feeds" / f"{code}.jsonl" for code in self.world.samples}
        for code, path in self.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            self.connectors[code] = self._connector(code, path)
        self.feeder = Feeder(self.files, rate)

        self.subscribers = Subscribers(
            self.world,
            self.world.live_recipients,
            tuple(f"http://127.0.0.1:{p}" for p in self.gateway_ports),
            self.api_url,
        )
        self.subscribers.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _serve(
        self,
        name: str,
        roles: str,
        sections: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
    ) -> ServeProcess:
        process = ServeProcess(self.config, name, roles, sections, env)
        self.processes[name] = process
        return process

    def _connector(self, code: str, path: Path) -> ConnectorProcess:
        config = self.tmp / f"{connector_name(code)}.toml"
        kafka_section = self.config.kafka
        config.write_text(
            "[connector]\n"
            f'name = "{connector_name(code)}"\n'
            'type = "jsonl-file"\n'
            f'resource = "{code}"\n'
            "batch_size = 500\n"
            "poll_interval_s = 0.05\n"
            "[kafka]\n"
            f'bootstrap_servers = "{kafka_section.bootstrap_servers}"\n'
            f'topic_prefix = "{kafka_section.topic_prefix}"\n'
            "[metrics]\nport = 0\n"
            f'[source]\npath = "{path}"\n',
            encoding="utf-8",
        )
        process = ConnectorProcess(config, self.tmp / f"{connector_name(code)}.log")
        process.start()
        return process

    # -- faults and supervision -------------------------------------------------------------
    def supervise(self) -> None:
        """Start again any hub process that ended on its own; connectors must not end."""
        for name, process in self.processes.items():
            if name not in self.stopped and not process.alive:
                status = process.process.poll() if process.process else None
                self.events.append(f"{name} ended on its own (exit {status}) and was restarted")
                process.start(timeout=120)
        for resource, connector in self.connectors.items():
            assert connector.alive(), f"connector {resource} ended:\n{connector.output()}"
        assert not self.subscribers.failures, self.subscribers.failures[:5]

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            self.supervise()
            assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
            time.sleep(0.2)

    def settle(self, expected: dict[str, set[str]], timeout: float = 240.0) -> float:
        """Wait until the sinks hold as many records as ``expected`` names, then a moment
        more (a duplicate would show now); returns how long it took."""
        began = time.monotonic()
        want = sum(len(ids) for ids in expected.values())
        self.wait(
            lambda: self.subscribers.delivered() >= want,
            timeout,
            f"the sinks hold {self.subscribers.delivered():,} of {want:,} deliveries",
        )
        took = time.monotonic() - began
        time.sleep(1.0)
        return took

    # -- checks -------------------------------------------------------------------------------
    def check(self, rows: Sequence[SourceRow]) -> Check:
        """The sinks against the entitlements of ``rows`` (all fed so far): per recipient,
        exactly its record ids, each once; each record the right view of its source record,
        from the right place of the source topic."""
        expected = entitlements(self.world, list(rows))
        problems: list[str] = []
        published, repeated = load_sources(
            self.config.kafka.bootstrap_servers, self.source_topics.values()
        )
        fed = {row.record_id for row in rows}
        if repeated:
            problems.append(f"source topics hold {len(repeated)} ids twice: {examples(repeated)}")
        if published.keys() != fed:
            problems.append(
                f"source topics: {len(fed - published.keys())} fed rows missing "
                f"({examples(fed - published.keys())}), {len(published.keys() - fed)} unknown "
                f"({examples(published.keys() - fed)})"
            )
        grants = {g.id: g for g in self.world.grants}
        wrong: Counter[str] = Counter()

        def note(kind: str, detail: str) -> None:
            wrong[kind] += 1
            if wrong[kind] <= 5:
                problems.append(f"{kind}: {detail}")

        entries = 0
        for recipient in sorted(set(expected) | set(self.subscribers.sinks)):
            sink = self.subscribers.sinks.get(recipient)
            records = list(sink.records) if sink is not None else []
            entries += len(records)
            ids = [r.record_id for r in records]
            got = set(ids)
            want = expected.get(recipient, set())
            if len(got) != len(ids):
                dups = [i for i, n in Counter(ids).items() if n > 1]
                note("duplicates", f"{recipient}: {len(dups)} ids twice ({examples(dups)})")
            if want - got:
                note(
                    "lost",
                    f"{recipient}: {len(want - got)} of {len(want)} ({examples(want - got)})",
                )
            if got - want:
                note("not entitled", f"{recipient}: {len(got - want)} ({examples(got - want)})")
            for record in records:
                self._check_record(recipient, record, grants, published, note)
        for kind, count in wrong.items():
            if count > 5:
                problems.append(f"{kind}: {count} in all")
        return Check(
            records=len(rows),
            recipients=sum(1 for ids in expected.values() if ids),
            entries=entries,
            problems=problems,
        )

    def _check_record(
        self,
        recipient: str,
        record: DeliveredRecord,
        grants: dict[str, Any],
        published: dict[str, Published],
        note: Callable[[str, str], None],
    ) -> None:
        grant = grants.get(record.subscription)
        if grant is None or grant.recipient != recipient or grant.resource != record.resource:
            note("foreign subscription", f"{recipient}: {record.subscription}")
            return
        if not str(record.data.get("region_code", "")).startswith(grant.prefix):
            note("outside jurisdiction", f"{recipient}: {record.record_id}")
        source = published.get(record.record_id)
        if source is None:
            return  # named above, as not entitled
        if (record.source_topic, record.source_partition, record.source_offset) != (
            source.topic,
            source.partition,
            source.offset,
        ):
            note("wrong lineage", f"{recipient} {record.record_id}")
        original = self._decoded.get(record.record_id)
        if original is None:
            original = self._decoded[record.record_id] = self._schemas.decode(
                source.schema_id, source.payload
            )
        wanted = grant.expected_view(original)
        if record.data != wanted:
            diff = {
                k: (record.data.get(k), wanted.get(k))
                for k in record.data.keys() | wanted.keys()
                if record.data.get(k) != wanted.get(k)
            }
            note("wrong view", f"{recipient} {record.record_id} ({grant.id}): {diff}")

    @property
    def _schemas(self) -> _Schemas:
        schemas = getattr(self, "_schema_cache", None)
        if schemas is None:
            self.state.schemas.catch_up(10)
            schemas = self._schema_cache = _Schemas(self.state.registry.schema)
        return schemas

    def audit(self, anchors: Anchors | None, timeout: float = 120.0) -> Report:
        """Verify the audit trail once the notary has chained every event (signatures
        against the published key; ``anchors`` from the previous verification must still
        be on the chain)."""
        key = published_key(self.config, self.topics)
        deadline = time.monotonic() + timeout
        while True:
            log = read_log(
                self.config.kafka.bootstrap_servers, self.topics.audit, self.topics.audit_chain
            )
            report = verify_log(log, key, anchors)
            pending = sum(s.pending for s in report.partitions.values())
            if not pending or not report.ok or time.monotonic() > deadline:
                self.last_audit_log = log
                return report
            self.supervise()
            time.sleep(1.0)

    def audited_deliveries(self) -> dict[str, Counter[str]]:
        """Per recipient, how often the audit trail says each record id reached it (by the
        routers' delivery events, read from the last verified log)."""
        out: dict[str, Counter[str]] = defaultdict(Counter)
        events = (
            (e.partition, e.offset, e.value)
            for partition in self.last_audit_log.events.values()
            for e in partition
        )
        for row in all_rows(events):
            if row.kind == "delivery" and row.recipient and row.action == "deliver":
                out[row.recipient].update(row.record_ids)
        return out

    # -- stop ---------------------------------------------------------------------------------
    def stop(self) -> None:
        if hasattr(self, "subscribers"):
            self.subscribers.stop()
        for connector in self.connectors.values():
            if connector.alive():
                connector.terminate()
        for process in self.processes.values():
            if process.alive:
                process.kill()
        if hasattr(self, "state"):
            self.state.stop()
        self.brokers.down()
