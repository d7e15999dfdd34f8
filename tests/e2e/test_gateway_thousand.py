"""A thousand grassroots units, each its own stream, through a real gateway process.

The hub runs as ``govhub serve --roles api,router`` and the gateway as
``govhub serve --roles gateway``, both real processes on the test broker. A thousand
community units (社区/村), each with its own jurisdiction, token, key pair and sink, stream
over SSE, WebSocket and NDJSON long-poll from this process (asyncio tasks on one shared
HTTP connection pool). While records flow, subscribers disconnect at random and the gateway
is killed with SIGKILL and started again. At the end every sink must hold exactly the
records of its own village: none missing, none twice, none of a neighbour's.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from connectors.base import SourceRecord
from connectors.publisher import Publisher
from connectors.sdk.gateway import GatewaySettings, GatewaySubscriber
from connectors.sinks.jsonl import JsonlSink
from hub import kafka
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.samples import load_sample
from hub.config import HubConfig, load_config
from hub.controlstate import CompactedTable
from hub.crypto.keyrelease import generate_recipient_key
from hub.demo.world import generate_records
from hub.parties.model import Party, PartyKind, PublicKey, Role, hash_token, new_token
from hub.state import ControlState
from hub.subscriptions.model import Subscription
from hub.topics import ensure_hub_topics, ensure_resource_topics

# The thousand tokens are hashed at scrypt's lowest allowed cost (the hash names its cost):
# at the default one, the 3,000 checks of first-time subscribers (at provisioning, at the
# gateway, at the api) took most of this test's time.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

UNITS = 1000
PER_UNIT = 3  # records per village, published in three waves
COUNTY = "110105"
PROTOCOLS = ("sse", "ws", "poll")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def village(i: int) -> str:
    return f"{COUNTY}{1 + i // 100:03d}{1 + i % 100:03d}"


@dataclass
class Unit:
    party: Party
    token: str
    private_key: bytes
    protocol: str


TOKEN_COST = 10


def _hash(token: str) -> str:
    return hash_token(token, cost=TOKEN_COST)


def build_units(count: int) -> list[Unit]:
    tokens = [new_token(f"v{i:04d}") for i in range(count)]
    # The token hashes are deliberately slow (scrypt): spread them over the cores.
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        hashes = list(pool.map(_hash, tokens, chunksize=50))
    units = []
    for i, (token, token_hash) in enumerate(zip(tokens, hashes, strict=True)):
        private, public = generate_recipient_key()
        party = Party(
            id=f"v{i:04d}",
            name=f"第{i}社区",
            kind=PartyKind.UNIT,
            region_code=village(i),
            token_hash=token_hash,
            public_keys=(PublicKey(kem="x25519", key=base64.b64encode(public).decode()),),
        )
        units.append(Unit(party, token, private, PROTOCOLS[i % 3]))
    return units


def put_rows(config: HubConfig, topic: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
    producer = kafka.producer(config.kafka.bootstrap_servers, "e2e-provision")
    for key, value in rows:
        producer.produce(topic, key=key.encode(), value=orjson.dumps(value))
        producer.poll(0)
    assert producer.flush(30) == 0


class Process:
    """A ``govhub serve`` process; ``kill()`` is SIGKILL, ``start()`` starts it again."""

    def __init__(self, config_path: Path, roles: str, log: Path) -> None:
        self.args = [
            sys.executable,
            "-m",
            "hub.cli",
            "--log-level",
            "WARNING",
            "serve",
            "--roles",
            roles,
            "--config",
            str(config_path),
        ]
        self.log = log
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                self.args, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "govhub serving" in line, (line, self.log.read_text()[-3000:])
        return line

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def hub(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[HubConfig, Path, int, int]]:
    api_port, gateway_port = free_port(), free_port()
    path = tmp_path / "hub.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[kafka]\nbootstrap_servers = "{kafka_bootstrap}"\n'
        f'topic_prefix = "k{uuid.uuid4().hex[:8]}."\n'
        f"[api]\nport = {api_port}\n"
        "[router]\ntransaction_interval_ms = 100\n"
        f"[gateway]\nport = {gateway_port}\nposition_interval_s = 2.0\n"
        "[metrics]\nport = 0\n"
    )
    config = load_config(path, env={})
    yield config, path, api_port, gateway_port


def test_thousand_units_stream_exactly_their_rows_through_kills_and_disconnects(
    hub: tuple[HubConfig, Path, int, int], tmp_path: Path
) -> None:
    config, config_path, api_port, gateway_port = hub
    started = time.monotonic()
    units = build_units(UNITS)
    hashed = time.monotonic()

    # Control state: the resource, the units and their subscriptions.
    admin = kafka.admin_client(config.kafka.bootstrap_servers)
    state = ControlState(config)
    ensure_hub_topics(admin, state.topics, config.kafka.delivery_partitions)
    state.start()
    sample = load_sample("mzj.dibao")
    schema_id = state.registry.register(sample.resource.subject, sample.schema_json)
    state.put_resource(sample.resource)
    ensure_resource_topics(admin, state.topics, "mzj", sample.resource.code)
    publisher_party = Party(
        id="mzj",
        name="民政局",
        kind=PartyKind.DEPARTMENT,
        region_code=f"{COUNTY}000000",
        roles=(Role.PUBLISHER,),
    )
    put_rows(
        config,
        state.topics.parties,
        [(u.party.id, u.party.model_dump(mode="json")) for u in units]
        + [("mzj", publisher_party.model_dump(mode="json"))],
    )
    subs = [
        Subscription(
            id=f"sub-{u.party.id}",
            resource=sample.resource.code,
            subscriber=u.party.id,
            jurisdiction=u.party.region_code,
            purpose="入户走访",
        )
        for u in units
    ]
    put_rows(config, state.topics.subscriptions, [(s.id, s.model_dump(mode="json")) for s in subs])
    assert state.catch_up_policy(30)

    logs = tmp_path / "logs"
    logs.mkdir()
    core = Process(config_path, "api,router", logs / "hub.log")
    gateway = Process(config_path, "gateway", logs / "gateway.log")
    checkpoints = CompactedTable(config.kafka.bootstrap_servers, state.topics.connect_offsets)
    try:
        core.start()
        gateway.start()
        checkpoints.start()
        api_url = f"http://127.0.0.1:{api_port}"
        gateway_url = f"http://127.0.0.1:{gateway_port}"

        base_rows = generate_records(50, invalid=0)
        expected: dict[str, set[str]] = {u.party.id: set() for u in units}
        waves: list[list[SourceRecord]] = [[] for _ in range(PER_UNIT)]
        for wave in range(PER_UNIT):
            for i, unit in enumerate(units):
                n = wave * UNITS + i
                row = {**base_rows[n % len(base_rows)], "region_code": unit.party.region_code}
                waves[wave].append(SourceRecord(f"e2e:{n}", row, {"n": n}))
                expected[unit.party.id].add(f"e2e:{n}")

        publisher = Publisher(
            connector="e2e",
            bootstrap_servers=config.kafka.bootstrap_servers,
            topics=state.topics,
            resource=sample.resource,
            schema_id=schema_id,
            codec=state.registry.codec(schema_id),
            checkpoints=checkpoints,
            regions=PartyRegions(state.parties),
        )
        sinks = {u.party.id: JsonlSink(tmp_path / "sinks" / f"{u.party.id}.jsonl") for u in units}
        stats = asyncio.run(
            run_units(units, sinks, expected, api_url, gateway_url, publisher, waves, gateway)
        )
        publisher.close()
        for sink in sinks.values():
            sink.close()
    finally:
        checkpoints.stop()
        gateway.stop()
        core.stop()
        state.stop()

    # Every sink holds exactly its village's records: none missing, none twice.
    wrong = []
    for unit in units:
        rows = [
            orjson.loads(line)
            for line in (tmp_path / "sinks" / f"{unit.party.id}.jsonl").read_bytes().splitlines()
        ]
        ids = [r["record_id"] for r in rows]
        if sorted(ids) != sorted(expected[unit.party.id]) or any(
            r["data"]["region_code"] != unit.party.region_code or "*" not in r["data"]["id_card"]
            for r in rows
        ):
            wrong.append((unit.party.id, sorted(ids)))
    print(
        f"\n{UNITS} units, {UNITS * PER_UNIT} records: hashing {hashed - started:.0f} s, "
        f"total {time.monotonic() - started:.0f} s; {stats}"
    )
    assert not wrong, wrong[:5]
    assert stats["disconnects"] > 0 and stats["gateway_kills"] == 1
    assert stats["protocols"] == {"sse": 334, "ws": 333, "poll": 333}


async def run_units(
    units: list[Unit],
    sinks: dict[str, JsonlSink],
    expected: dict[str, set[str]],
    api_url: str,
    gateway_url: str,
    publisher: Publisher,
    waves: list[list[SourceRecord]],
    gateway: Process,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(32))
    rng = random.Random(7)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    running: dict[str, tuple[GatewaySubscriber, asyncio.Event, asyncio.Task[None]]] = {}
    totals: dict[str, int] = {u.party.id: 0 for u in units}
    failures: list[tuple[str, BaseException]] = []

    def start(unit: Unit) -> None:
        settings = GatewaySettings(
            gateway_urls=(gateway_url,),
            api_url=api_url,
            recipient=unit.party.id,
            token=unit.token,
            private_key=unit.private_key,
            protocol=unit.protocol,  # type: ignore[arg-type]
            poll_wait_s=5.0,
            reconnect_initial_s=0.2,
            reconnect_max_s=2.0,
        )
        client = GatewaySubscriber(settings, sinks[unit.party.id], http=http)
        stop = asyncio.Event()
        task = loop.create_task(client.run(stop))
        running[unit.party.id] = (client, stop, task)

    async def disconnect(unit: Unit) -> None:
        """Drop the connection at a random point; the same client reconnects a little
        later (keeping its resume ticket and keys, as a long-running subscriber does)."""
        client, stop, task = running.pop(unit.party.id)
        stop.set()
        try:
            await task
        except Exception as exc:
            failures.append((unit.party.id, exc))
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        stop = asyncio.Event()
        running[unit.party.id] = (client, stop, loop.create_task(client.run(stop)))

    def delivered() -> int:
        return sum(running[p][0].records for p in running)

    began = time.monotonic()
    marks: dict[str, float] = {}
    for unit in units:
        start(unit)
    disconnects = 0
    kills = 0
    deadline = time.monotonic() + 420  # a bound against hanging, not a speed requirement
    await asyncio.to_thread(publisher.publish, waves[0])
    published = len(waves[0])
    chaos: list[asyncio.Task[None]] = []
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        for task in [t for t in (r[2] for r in running.values()) if t.done()]:
            if task.exception() is not None:
                failures.append(("task", task.exception()))  # type: ignore[arg-type]
        assert not failures, failures[:3]
        got = delivered()
        for share in (0.5, 1.0):
            key = f"{published // UNITS}x{share}"
            if got >= published * share and key not in marks:
                marks[key] = round(time.monotonic() - began, 1)
        if published < len(units) * PER_UNIT and got >= published * 0.5:
            if kills == 0 and published == UNITS:
                # The gateway dies mid-stream; the next wave is published while it is down.
                await asyncio.to_thread(gateway.kill)
                kills += 1
                await asyncio.to_thread(publisher.publish, waves[1])
                published += len(waves[1])
                await asyncio.sleep(1.0)
                await asyncio.to_thread(gateway.start)
            elif published == 2 * UNITS:
                await asyncio.to_thread(publisher.publish, waves[2])
                published += len(waves[2])
        if published < len(units) * PER_UNIT or got < published:
            for unit in rng.sample(units, 15):  # random disconnects throughout
                if unit.party.id in running:
                    disconnects += 1
                    chaos.append(loop.create_task(disconnect(unit)))
        chaos = [c for c in chaos if not c.done()]
        if published == len(units) * PER_UNIT and got >= published and not chaos:
            break
    await asyncio.gather(*chaos)
    await asyncio.sleep(0.5)  # a duplicate would show up now
    short = [
        {
            "unit": p,
            "protocol": c._s.protocol,
            "records": c.records,
            "expected": len(expected[p]),
            "connects": c.connects,
            "last_end": c.last_end and c.last_end.reason,
            "replays_skipped": c._opener.replays_skipped,
            "duplicates_skipped": c.duplicates_skipped,
            "cursor": sinks[p].load_cursor(),
        }
        for p, (c, _, _) in running.items()
        if c.records != len(expected[p])
    ]
    for unit in units:
        client, stop, task = running.pop(unit.party.id)
        stop.set()
        await task
        totals[unit.party.id] = client.records
    await http.close()
    protocols: dict[str, int] = {}
    for unit in units:
        protocols[unit.protocol] = protocols.get(unit.protocol, 0) + 1
    assert sum(totals.values()) == UNITS * PER_UNIT, (published, short)
    return {
        "delivered": sum(totals.values()),
        "disconnects": disconnects,
        "gateway_kills": kills,
        "protocols": protocols,
        "reached_s": marks,
    }
