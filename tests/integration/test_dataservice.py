"""Data services on real Kafka: freshness, tombstones, jurisdiction and masking,
verification, revocation, audit, and a node killed and restarted.

One hub (api-less: only the data-service role in this process) with the demo world
(低保 records of four communities) and service subscriptions for 人社局 (the district)
and one community (永安里社区, default masking for 社区/村 units).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from connectors.base import SourceRecord
from hub import kafka
from hub.catalogue.model import ShareMethod
from hub.dataservice.audit import CHUNK_KIND, EVENT_KIND, keys_digest
from hub.demo.world import generate_records
from hub.policy.masking import MaskKind, masker
from hub.subscriptions.model import Subscription, SubscriptionStatus
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

COMMUNITY = "jianwai-yonganli"
COMMUNITY_REGION = "110105001001"
DEPT = "rsj"
RECORDS = 400
UPDATES = 1000


class Http:
    """A small JSON client for the data service (stdlib only)."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, bytes]:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, orjson.loads(raw), raw
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, orjson.loads(raw) if raw else None, raw


def service_subscription(sub_id: str, party: str, jurisdiction: str, **extra: Any) -> Subscription:
    return Subscription(
        id=sub_id,
        resource="dibao",
        subscriber=party,
        jurisdiction=jurisdiction,
        purpose=extra.pop("purpose", "低保资格核验"),
        delivery=ShareMethod.SERVICE,
        **extra,
    )


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubWorld]:
    tmp = tmp_path_factory.mktemp("dataservice")
    with hub_world(
        kafka_bootstrap,
        tmp,
        roles=("data-service",),
        **{"data_service.port": 0, "data_service.indexes": {"dibao": ["category"]}},
    ) as w:
        state = w.runtime.state
        state.put_subscriptions(
            [
                service_subscription("ds-rsj", DEPT, "110105000000"),
                service_subscription("ds-community", COMMUNITY, COMMUNITY_REGION),
            ]
        )
        rows = _unique(generate_records(RECORDS, seed=11, invalid=0))
        w.publish(rows)
        w.rows = rows  # type: ignore[attr-defined]
        _wait_visible(w, rows)
        yield w


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["id_card"], row)
    return list(seen.values())


def client(world: HubWorld, party: str, base: str | None = None) -> Http:
    return Http(base or world.runtime.data_service_url, world.members[party].token)


def _wait_visible(world: HubWorld, rows: list[dict[str, Any]], timeout: float = 60.0) -> None:
    http = client(world, DEPT)
    keys = [r["id_card"] for r in rows]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        missing = 0
        for i in range(0, len(keys), 100):
            status, body, _ = http.call("POST", "/v1/data/dibao/batch", {"keys": keys[i : i + 100]})
            missing += len(body["not_found"]) if status == 200 else 100
        if missing == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{missing} records not queryable after {timeout} s")


def _produce_tombstone(world: HubWorld, key: str) -> None:
    producer = kafka.producer(world.bootstrap, "test-tombstone")
    topic = world.runtime.state.topics.source("mzj", "dibao")
    producer.produce(topic, None, key.encode())
    assert producer.flush(10) == 0


# -- lookups, policy -------------------------------------------------------------------------
def test_get_batch_and_listing_follow_the_policy(world: HubWorld) -> None:
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    ours = [r for r in rows if r["region_code"] == COMMUNITY_REGION]
    theirs = [r for r in rows if r["region_code"] != COMMUNITY_REGION]
    assert ours and theirs

    dept = client(world, DEPT)
    status, body, _ = dept.call("GET", f"/v1/data/dibao/records/{ours[0]['id_card']}")
    assert status == 200
    # A district department gets the record unmasked (important, not core; not grassroots).
    assert body["record"]["name"] == ours[0]["name"]
    assert body["record"]["id_card"] == ours[0]["id_card"]
    assert body["record"]["amount"] == ours[0]["amount"]

    community = client(world, COMMUNITY)
    status, body, _ = community.call("GET", f"/v1/data/dibao/records/{ours[0]['id_card']}")
    assert status == 200
    record = body["record"]
    assert record["name"] == masker(MaskKind.NAME)(ours[0]["name"]) != ours[0]["name"]
    assert record["id_card"] == masker(MaskKind.ID_CARD)(ours[0]["id_card"])
    assert record["id_card"] != ours[0]["id_card"]
    assert record["household_size"] == ours[0]["household_size"]  # not personal: clear
    # Another community's record does not exist for this caller.
    status, body, _ = community.call("GET", f"/v1/data/dibao/records/{theirs[0]['id_card']}")
    assert status == 404

    keys = [ours[1]["id_card"], theirs[1]["id_card"], "110105190001011234"]
    status, body, _ = community.call("POST", "/v1/data/dibao/batch", {"keys": keys})
    assert status == 200
    assert list(body["records"]) == [ours[1]["id_card"]]
    assert sorted(body["not_found"]) == sorted(keys[1:])

    # Listing: every row of the community, none of the others, masked, over several pages.
    listed: dict[str, Any] = {}
    cursor = None
    pages = 0
    while True:
        path = "/v1/data/dibao/records?limit=7" + (f"&cursor={cursor}" if cursor else "")
        status, body, _ = community.call("GET", path)
        assert status == 200, body
        pages += 1
        for item in body["records"]:
            listed[item["key"]] = item["record"]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert pages >= len(ours) // 7
    assert set(listed) == {r["id_card"] for r in ours}
    assert all(r["region_code"] == COMMUNITY_REGION for r in listed.values())
    assert all(
        r["name"] == masker(MaskKind.NAME)(o["name"]) for o in ours for r in [listed[o["id_card"]]]
    )

    # The department narrows to a street and filters on an indexed field.
    got: set[str] = set()
    cursor = None
    while True:
        path = "/v1/data/dibao/records?region=110105002000&eq.category=URBAN&limit=50"
        status, body, _ = dept.call("GET", path + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, body
        got |= {item["key"] for item in body["records"]}
        assert all(item["record"]["category"] == "URBAN" for item in body["records"])
        cursor = body["cursor"]
        if cursor is None:
            break
    expected = {r["id_card"] for r in rows if r["region_code"].startswith("110105002")}
    assert got == expected  # the demo's records are all URBAN
    # A community cannot widen its jurisdiction.
    status, body, _ = community.call("GET", "/v1/data/dibao/records?region=110105000000")
    assert status == 403 and "outside" in body["error"]
    # Filters on fields that are not indexed are refused with the reason.
    status, body, _ = dept.call("GET", "/v1/data/dibao/records?eq.name=x")
    assert status == 400 and "indexed" in body["error"]


def test_verification_never_returns_stored_values(world: HubWorld) -> None:
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    row = next(r for r in rows if r["region_code"] == COMMUNITY_REGION)
    community = client(world, COMMUNITY)
    status, body, raw = community.call(
        "POST",
        "/v1/data/dibao/verify",
        {"key": row["id_card"], "fields": {"name": row["name"], "household_size": 99}},
    )
    assert status == 200
    assert body == {
        "resource": "dibao",
        "key": row["id_card"],
        "found": True,
        "fields": {"name": "match", "household_size": "no_match"},
    }
    status, body, raw = community.call(
        "POST",
        "/v1/data/dibao/verify",
        {"key": row["id_card"], "fields": {"name": "张三丰", "amount": "1.00"}},
    )
    assert status == 200 and body["fields"] == {"name": "no_match", "amount": "no_match"}
    text = raw.decode()
    for value in (row["name"], row["amount"], row["address"]):
        assert value not in text
    assert "record" not in body
    # Outside the caller's jurisdiction a record is simply not found.
    other = next(r for r in rows if r["region_code"] != COMMUNITY_REGION)
    status, body, _ = community.call(
        "POST",
        "/v1/data/dibao/verify",
        {"key": other["id_card"], "fields": {"name": other["name"]}},
    )
    assert status == 200 and body["found"] is False and body["fields"] == {"name": "not_found"}
    # A value of the wrong type is a clear error naming the field.
    status, body, _ = community.call(
        "POST", "/v1/data/dibao/verify", {"key": row["id_card"], "fields": {"approved_on": "soon"}}
    )
    assert status == 400 and "approved_on" in body["error"]


def test_calls_are_audited(world: HubWorld) -> None:
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    key = rows[0]["id_card"]
    marker = f"audit-{uuid.uuid4().hex[:6]}"
    dept = client(world, DEPT)
    status, _, _ = dept.call(
        "GET", f"/v1/data/dibao/records/{key}", headers={"Govhub-Purpose": quote("低保资格核验")}
    )
    assert status == 200
    status, _, _ = dept.call(
        "GET", f"/v1/data/dibao/records/{key}", headers={"Govhub-Purpose": marker}
    )
    assert status == 403
    consumer = world.consumer(world.runtime.state.topics.audit)
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and not any(
            e.get("detail") and marker in e["detail"] for e in events
        ):
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None and msg.value():
                    chunk = orjson.loads(msg.value())
                    if chunk.get("kind") == CHUNK_KIND:
                        assert all(e["kind"] == EVENT_KIND for e in chunk["events"])
                        events += chunk["events"]
    finally:
        consumer.close()
    mine = [e for e in events if e["caller"] == DEPT and e["keys_sha256"] == keys_digest([key])]
    ok = [e for e in mine if e["outcome"] == "ok" and e["call"] == "get"]
    refused = [e for e in mine if e["outcome"] == "forbidden"]
    assert ok and refused
    assert ok[-1]["subscription"] == "ds-rsj"
    assert ok[-1]["policy_version"] == "ds-rsj@0"
    assert ok[-1]["results"] == 1 and ok[-1]["resource"] == "dibao"
    assert all(key not in orjson.dumps(e).decode() for e in mine)  # keys only as a digest


# -- freshness and deletes -------------------------------------------------------------------
def test_updates_are_queryable_within_a_second(world: HubWorld) -> None:
    """p99 over 1,000 updates of (source publish → visible through the API) ≤ 1 s."""
    rows: list[dict[str, Any]] = _unique(generate_records(UPDATES + 50, seed=23, invalid=0))[
        :UPDATES
    ]
    assert len(rows) == UPDATES
    world.publish(rows, start=10_000)
    _wait_visible(world, rows)
    http = client(world, DEPT)
    pending: dict[str, tuple[int, float]] = {}
    seen: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def check() -> None:
        while not done.is_set() or pending:
            with lock:
                keys = list(pending)[:100]
            if not keys:
                time.sleep(0.005)
                continue
            status, body, _ = http.call("POST", "/v1/data/dibao/batch", {"keys": keys})
            now = time.monotonic()
            if status != 200:
                continue
            with lock:
                for key, record in body["records"].items():
                    want = pending.get(key)
                    if want is not None and record["household_size"] == want[0]:
                        seen.append(now - want[1])
                        del pending[key]

    checker = threading.Thread(target=check, daemon=True)
    checker.start()
    publisher = world.publisher("test-updates")

    try:
        for start in range(0, UPDATES, 10):
            chunk = []
            for i in range(start, start + 10):
                row = dict(rows[i])
                row["household_size"] = 7 + (i % 13)  # outside the seed's 1..6: a new value
                chunk.append(row)
            sent = time.monotonic()
            with lock:
                for row in chunk:
                    pending[row["id_card"]] = (row["household_size"], sent)
            publisher.publish(
                [SourceRecord(f"upd:{start}:{j}", r, {"n": start + j}) for j, r in enumerate(chunk)]
            )
            time.sleep(0.02)
    finally:
        publisher.close()
        done.set()
        checker.join(30)
    assert not pending, f"{len(pending)} updates never became visible"
    assert len(seen) == UPDATES
    seen.sort()
    p99 = seen[int(len(seen) * 0.99) - 1]
    print(
        f"freshness over {len(seen)} updates: p50 {statistics.median(seen) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {seen[-1] * 1000:.0f} ms"
    )
    assert p99 <= 1.0


def test_tombstone_removes_the_record(world: HubWorld) -> None:
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    victim = rows[-1]
    dept = client(world, DEPT)
    status, _, _ = dept.call("GET", f"/v1/data/dibao/records/{victim['id_card']}")
    assert status == 200
    _produce_tombstone(world, victim["id_card"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, _, _ = dept.call("GET", f"/v1/data/dibao/records/{victim['id_card']}")
        if status == 404:
            break
        time.sleep(0.02)
    assert status == 404
    status, body, _ = dept.call(
        "GET", f"/v1/data/dibao/records?region={victim['region_code']}&limit=100"
    )
    assert victim["id_card"] not in {item["key"] for item in body["records"]}
    world.rows = rows[:-1]  # type: ignore[attr-defined]


def test_bad_source_records_are_kept_and_reported(world: HubWorld) -> None:
    """Bad input never stops the view: a value that does not decode is kept under its key
    and answered with a clear error; a record that cannot be keyed is skipped and counted;
    the records after them are materialised as usual."""
    from prometheus_client import REGISTRY

    def skipped() -> float:
        labels = {"resource": "dibao", "reason": "undecodable"}
        return REGISTRY.get_sample_value("govhub_dataservice_records_skipped_total", labels) or 0

    before = skipped()
    producer = kafka.producer(world.bootstrap, "test-bad-input")
    topic = world.runtime.state.topics.source("mzj", "dibao")
    region = [("govhub-region", COMMUNITY_REGION.encode())]
    producer.produce(topic, b"not avro at all", b"110105199901010000", headers=region)
    producer.produce(topic, b"no key, not avro", None, headers=region)
    assert producer.flush(10) == 0
    good = dict(world.rows[0], household_size=3)  # type: ignore[attr-defined]
    world.publish([good], start=50_000)
    _wait_visible(world, [good])
    dept = client(world, DEPT)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, body, _ = dept.call("GET", f"/v1/data/dibao/records/{good['id_card']}")
        if body["record"]["household_size"] == 3:
            break
        time.sleep(0.05)
    assert body["record"]["household_size"] == 3
    status, body, _ = dept.call("GET", "/v1/data/dibao/records/110105199901010000")
    assert status == 500 and "cannot be decoded" in body["error"]
    assert skipped() >= before + 1
    # The bad record does not break a listing of its region either.
    status, body, _ = dept.call("GET", f"/v1/data/dibao/records?region={COMMUNITY_REGION}")
    assert status == 200 and "110105199901010000" not in {i["key"] for i in body["records"]}
    _produce_tombstone(world, "110105199901010000")


# -- revocation, limits ----------------------------------------------------------------------
def test_revoked_subscription_gets_403_within_a_second(world: HubWorld) -> None:
    state = world.runtime.state
    party = "chaowai"
    sub = service_subscription("ds-chaowai", party, "110105002000", rate_limit_per_s=1000)
    state.put_subscription(sub)
    http = client(world, party)
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    key = next(r["id_card"] for r in rows if r["region_code"].startswith("110105002"))
    deadline = time.monotonic() + 5
    status = 0
    while time.monotonic() < deadline and status != 200:
        status, _, _ = http.call("GET", f"/v1/data/dibao/records/{key}")
    assert status == 200
    revoked = sub.model_copy(update={"status": SubscriptionStatus.REVOKED, "version": 1})
    state.put_subscription(revoked)
    written = time.monotonic()
    while True:
        status, body, _ = http.call("GET", f"/v1/data/dibao/records/{key}")
        if status == 403:
            break
        assert time.monotonic() - written < 5
    took = time.monotonic() - written
    assert "revoked" in body["error"]
    assert took <= 1.0, f"403 only after {took:.2f} s"


def test_rate_limit_per_subscription(world: HubWorld) -> None:
    state = world.runtime.state
    party = "jianwai"
    state.put_subscription(
        service_subscription("ds-jianwai", party, "110105001000", rate_limit_per_s=5)
    )
    http = client(world, party)
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    key = next(r["id_card"] for r in rows if r["region_code"].startswith("110105001"))
    statuses = [http.call("GET", f"/v1/data/dibao/records/{key}")[0] for _ in range(20)]
    assert statuses.count(200) >= 5 and 429 in statuses
    assert set(statuses) <= {200, 429}


def test_unknown_token_and_missing_subscription(world: HubWorld) -> None:
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    key = rows[0]["id_card"]
    bad = Http(world.runtime.data_service_url, "ghp_rsj.not-the-token")
    assert bad.call("GET", f"/v1/data/dibao/records/{key}")[0] == 401
    # 朝阳区 (the district unit) holds only a stream subscription in the demo world.
    other = client(world, "chaoyang")
    status, body, _ = other.call("GET", f"/v1/data/dibao/records/{key}")
    assert status == 403 and "service subscription" in body["error"]
    status, doc, _ = other.call("GET", "/openapi.json")
    assert status == 200 and "/v1/data/{resource}/verify" in doc["paths"]


# -- a node killed and restarted ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_node(
    world: HubWorld, state_dir: Path, port: int, rebuild: bool = False, extra: str = ""
) -> subprocess.Popen[bytes]:
    config = state_dir / "hub.toml"
    state_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"""state_dir = "{state_dir}"
[kafka]
bootstrap_servers = "{world.bootstrap}"
topic_prefix = "{world.config.kafka.topic_prefix}"
[metrics]
port = 0
[data_service]
port = {port}
rebuild_on_start = {"true" if rebuild else "false"}
indexes = {{ dibao = ["category"] }}
{extra}""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "serve",
            "--roles",
            "data-service",
            "--config",
            str(config),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(state_dir / "node.log", "ab"),
    )


def _stop_node(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert proc.poll() is None, "node exited"
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError("node not ready")


def _answers(world: HubWorld, base: str, party: str) -> dict[str, Any]:
    http = client(world, party, base)
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    keys = [r["id_card"] for r in rows[:100]]
    status, batch, _ = http.call("POST", "/v1/data/dibao/batch", {"keys": keys})
    assert status == 200
    listed = []
    cursor = None
    while True:
        path = "/v1/data/dibao/records?limit=100" + (f"&cursor={cursor}" if cursor else "")
        status, body, _ = http.call("GET", path)
        assert status == 200
        listed += body["records"]
        cursor = body["cursor"]
        if cursor is None:
            break
    return {"batch": batch, "listed": listed}


def test_killed_node_restarts_and_answers_the_same(world: HubWorld, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    node_dir = tmp_path / "node"
    proc = _start_node(world, node_dir, port)
    try:
        first_load = _wait_ready(base, proc)
        reference = {
            p: _answers(world, world.runtime.data_service_url, p) for p in (DEPT, COMMUNITY)
        }
        assert {p: _answers(world, base, p) for p in (DEPT, COMMUNITY)} == reference
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # While it is down the source moves on: an update and a delete.
        rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
        changed = dict(rows[0], household_size=19)
        world.publish([changed], start=90_000)
        _produce_tombstone(world, rows[1]["id_card"])
        world.rows = [changed, *rows[2:]]  # type: ignore[attr-defined]
        _wait_visible(world, [changed])
        time.sleep(0.5)
        reference = {
            p: _answers(world, world.runtime.data_service_url, p) for p in (DEPT, COMMUNITY)
        }
        assert reference[DEPT]["batch"]["records"][changed["id_card"]]["household_size"] == 19
        # Restart on the same store: resumes from its stored offsets.
        proc = _start_node(world, node_dir, port)
        resumed = _wait_ready(base, proc)
        assert {p: _answers(world, base, p) for p in (DEPT, COMMUNITY)} == reference
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # Restart rebuilding the store from offset 0: the same answers again.
        proc = _start_node(world, node_dir, port, rebuild=True)
        rebuilt = _wait_ready(base, proc)
        assert {p: _answers(world, base, p) for p in (DEPT, COMMUNITY)} == reference
        print(
            f"node ready: first {first_load:.1f} s, resumed {resumed:.1f} s, "
            f"rebuilt {rebuilt:.1f} s"
        )
    finally:
        _stop_node(proc)


def test_daily_quota_holds_across_nodes_and_restarts(world: HubWorld, tmp_path: Path) -> None:
    """Two nodes share each subscription's daily quota through their call counts; a node
    killed and restarted keeps its count."""
    state = world.runtime.state
    party = "chaowai-shenlu"  # holds no other service subscription
    state.put_subscription(service_subscription("ds-quota", party, "110105002002"))
    rows: list[dict[str, Any]] = world.rows  # type: ignore[attr-defined]
    key = next(r["id_card"] for r in rows if r["region_code"] == "110105002002")
    path = f"/v1/data/dibao/records/{key}"
    ports = [_free_port(), _free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    procs = [
        _start_node(world, tmp_path / f"node{i}", port, extra="daily_quota = 6")
        for i, port in enumerate(ports)
    ]

    def calls(base: str, n: int) -> list[int]:
        http = client(world, party, base)
        return [http.call("GET", path)[0] for _ in range(n)]

    def shared() -> None:
        time.sleep(2.5)  # each node writes its counts once a second

    try:
        for base, proc in zip(bases, procs, strict=True):
            _wait_ready(base, proc)
        assert calls(bases[0], 4) == [200] * 4
        shared()
        with urllib.request.urlopen(bases[0] + "/metrics", timeout=5) as response:
            exposed = response.read().decode()
        written = re.search(
            r'^govhub_dataservice_usage_writes_total\{outcome="ok"\} ([0-9.]+)$', exposed, re.M
        )
        assert written is not None and float(written.group(1)) >= 1
        assert calls(bases[1], 3) == [200, 200, 429]  # 4 + 2 = 6
        shared()
        assert calls(bases[0], 1) == [429]
        status, body, _ = client(world, party, bases[1]).call("GET", path)
        assert status == 429 and "daily quota" in body["error"]
        # Killed and started again on the same port, node 0 resumes its count of 4.
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        procs[0] = _start_node(world, tmp_path / "node0", ports[0], extra="daily_quota = 6")
        _wait_ready(bases[0], procs[0])
        assert calls(bases[0], 1) == [429]
    finally:
        for proc in procs:
            _stop_node(proc)
