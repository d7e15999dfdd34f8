"""The HTTP push source without Kafka: a stand-in loop plays the runner (read → ack)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import REGISTRY

from connectors.publisher import Publisher
from connectors.sources.http import HttpSource, HttpSourceConfig
from hub.catalogue.samples import load_sample
from hub.config import ConfigError
from hub.controlstate import CompactedTable
from hub.demo.world import generate_records
from hub.parties.model import hash_token
from hub.registry.schemas import AvroCodec
from hub.topics import Topics

TOKEN = "ghp_department-token"
SAMPLE = load_sample("mzj.dibao")
CODEC = AvroCodec(SAMPLE.schema_json)
PARTY = {"id": "mzj", "token_hash": hash_token(TOKEN), "status": "active"}
ROWS = generate_records(6, invalid=0)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Harness:
    def __init__(self, source: HttpSource, publisher: Publisher | None = None) -> None:
        self.source = source
        self.publisher = publisher
        self.published: list[str] = []
        self.paused = asyncio.Event()
        self.paused.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.source.port}{self.source.config.path}"

    async def run(self) -> None:
        """The runner's loop: read, 'publish', then ack — with the publisher's verdicts
        when there is a publisher (its ``prepare``: no Kafka involved)."""
        while True:
            await self.paused.wait()
            records = await self.source.read(4)
            self.published.extend(r.record_id for r in records)
            if self.publisher is not None and records:
                batch = self.publisher.prepare(records)
                self.source.receive_verdicts(batch.records, batch.rejections)
            await self.source.ack(records)


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[Harness, asyncio.Task[None], aiohttp.ClientSession]] = []

    async def make(
        parties: dict[str, Any] | None = None,
        regions: set[str] | None = None,
        publisher: Publisher | None = None,
        **settings: Any,
    ) -> tuple[Harness, aiohttp.ClientSession]:
        config = HttpSourceConfig.model_validate({"port": 0} | settings)
        source = HttpSource("c", config)
        source.bind(SAMPLE.resource, CODEC, {"mzj": PARTY} if parties is None else parties, regions)
        await source.connect(None)
        harness = Harness(source, publisher)
        session = aiohttp.ClientSession()
        made.append((harness, asyncio.create_task(harness.run()), session))
        return harness, session

    yield make
    for harness, task, session in made:
        task.cancel()
        await session.close()
        await harness.source.close()


async def test_answer_lists_each_record_after_the_ack(start: Callable[..., Any]) -> None:
    harness, http = await start()
    bad = dict(ROWS[1], region_code="11010500100X")
    body = [ROWS[0], bad, ROWS[2], {**ROWS[3], "unknown_field": 1}, "x"]
    async with http.post(harness.url, json=body, headers=AUTH | {"Idempotency-Key": "k1"}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["accepted"] == 2 and answer["rejected"] == 3
    results = answer["results"]
    assert [x["id"] for x in results] == [f"c:k1:{i}" for i in range(5)]
    assert [x["status"] for x in results] == ["accepted", "rejected", "accepted"] + ["rejected"] * 2
    assert [x.get("reason") for x in results[1::2]] == ["invalid-region", "schema-mismatch"]
    assert results[4] == {
        "id": "c:k1:4",
        "status": "rejected",
        "reason": "unparsable",
        "detail": "not a JSON object",
    }
    # Every record, rejected ones too, went through the runner (rejections to the DLQ).
    assert harness.published == [f"c:k1:{i}" for i in range(5)]
    # A retry with the same key gets the same answer and publishes nothing again.
    async with http.post(harness.url, json=body, headers=AUTH | {"Idempotency-Key": "k1"}) as r:
        assert r.headers["Idempotent-Replayed"] == "true"
        assert await r.json() == answer
    assert len(harness.published) == 5


async def test_ndjson_record_ids_and_bad_lines(start: Callable[..., Any]) -> None:
    harness, http = await start(record_id_field="_id")
    lines = [orjson.dumps({**ROWS[0], "_id": "a-1"}), b"{broken", orjson.dumps(ROWS[1])]
    async with http.post(harness.url, data=b"\n".join(lines), headers=AUTH) as r:
        answer = await r.json()
    first, broken, third = answer["results"]
    assert first == {"id": "c:a-1", "status": "accepted"}  # _id is not a schema field: dropped
    assert broken["reason"] == "unparsable" and "invalid JSON" in broken["detail"]
    assert third["id"].startswith("c:") and third["status"] == "accepted"


async def test_answer_waits_for_kafka(start: Callable[..., Any]) -> None:
    harness, http = await start()
    harness.paused.clear()
    await asyncio.sleep(1.1)  # let the runner's read time out and park on the pause
    post = asyncio.create_task(http.post(harness.url, json=ROWS[:2], headers=AUTH))
    for _ in range(300):  # the token check and the body take their time on a busy machine
        if harness.source.lag() == 2:
            break
        await asyncio.sleep(0.05)
    assert harness.source.lag() == 2
    assert not post.done()
    harness.paused.set()
    async with await post as r:
        assert r.status == 200 and (await r.json())["accepted"] == 2


async def test_authentication(start: Callable[..., Any]) -> None:
    harness, http = await start()
    cases = [
        ({}, 401),
        ({"Authorization": "Bearer ghp_other"}, 401),
        ({"Authorization": "Basic x"}, 401),
    ]
    for headers, status in cases:
        async with http.post(harness.url, json=ROWS[:1], headers=headers) as r:
            assert r.status == status, headers
    assert harness.published == []
    suspended, http2 = await start({"mzj": dict(PARTY, status="suspended")})
    async with http2.post(suspended.url, json=ROWS[:1], headers=AUTH) as r:
        assert r.status == 403 and "suspended" in (await r.json())["error"]


async def test_refused_sign_ins_are_audited_and_limited(start: Callable[..., Any]) -> None:
    harness, http = await start()
    events: list[dict[str, Any]] = []
    harness.source.audit_sign_ins(events.append)
    async with http.post(
        harness.url, json=ROWS[:1], headers={"Authorization": "Bearer ghp_rsj.x"}
    ) as r:
        assert r.status == 401
    (event,) = events
    assert event["action"] == "sign-in.failed" and event["outcome"] == "failed"
    assert event["actor"] == "rsj"  # the party the token claims, never the token itself
    assert event["target"] == "connector:c" and event["resource"] == SAMPLE.resource.code
    assert (
        event["detail"]["remote"] == "127.0.0.1" and "ghp_rsj.x" not in orjson.dumps(event).decode()
    )
    # A good token is not audited; refusals past the burst are refused before the check.
    async with http.post(harness.url, json=ROWS[:1], headers=AUTH) as r:
        assert r.status == 200
    statuses = []
    for _ in range(25):
        async with http.post(harness.url, json=ROWS[:1], headers={}) as r:
            statuses.append(r.status)
    assert statuses[:19] == [401] * 19 and set(statuses[19:]) == {429}
    assert len(events) == 20 and all(e["actor"] == "anonymous" for e in events[1:])


async def test_token_hashes_instead_of_parties(start: Callable[..., Any]) -> None:
    digest = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    harness, http = await start({}, auth="token-hashes", token_hashes=[digest])
    async with http.post(harness.url, json=ROWS[:1], headers=AUTH) as r:
        assert r.status == 200
    with pytest.raises(ValueError, match="needs at least one entry"):
        HttpSourceConfig.model_validate({"auth": "token-hashes"})


async def test_limits_answer_early(start: Callable[..., Any]) -> None:
    harness, http = await start(max_body_bytes=2048, max_records_per_request=3, max_pending=4)
    async with http.post(harness.url, data=b"[" + b" " * 4000 + b"]", headers=AUTH) as r:
        assert r.status == 413
    async with http.post(harness.url, json=ROWS[:4], headers=AUTH) as r:
        assert r.status == 413 and "at most 3" in (await r.json())["error"]
    async with http.post(harness.url, data=b"[{", headers=AUTH) as r:
        assert r.status == 400
    async with http.post(
        harness.url, json=ROWS[:1], headers=AUTH | {"Idempotency-Key": "a b"}
    ) as r:
        assert r.status == 400
    harness.paused.clear()
    await asyncio.sleep(1.1)
    first = asyncio.create_task(http.post(harness.url, json=ROWS[:3], headers=AUTH))
    await asyncio.sleep(0.3)
    async with http.post(harness.url, json=ROWS[3:5], headers=AUTH) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1"
    harness.paused.set()
    async with await first as r:
        assert r.status == 200


async def test_stopping_answers_503_and_nothing_is_lost_silently(
    start: Callable[..., Any],
) -> None:
    harness, http = await start()
    harness.paused.clear()
    await asyncio.sleep(1.1)
    post = asyncio.create_task(http.post(harness.url, json=ROWS[:2], headers=AUTH))
    await asyncio.sleep(0.3)
    await harness.source.close()
    async with await post as r:
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert "nothing of this request is stored" in (await r.json())["error"]


async def test_health_and_config_errors(start: Callable[..., Any]) -> None:
    harness, http = await start()
    async with http.get(f"http://127.0.0.1:{harness.source.port}/healthz") as r:
        assert (await r.json())["status"] == "ok"
    taken = HttpSource("d", HttpSourceConfig(port=harness.source.port))
    taken.bind(SAMPLE.resource, CODEC, {})
    with pytest.raises(ConfigError, match=r"source\.port: cannot listen"):
        await taken.connect(None)
    unbound = HttpSource("e", HttpSourceConfig(port=0))
    with pytest.raises(ConfigError, match=r"source\.hub"):
        await unbound.connect(None)


async def test_region_codes_outside_the_party_hierarchy_are_refused_up_front(
    start: Callable[..., Any],
) -> None:
    harness, http = await start(regions={ROWS[0]["region_code"]})
    other = next(r for r in ROWS if r["region_code"] != ROWS[0]["region_code"])
    async with http.post(harness.url, json=[ROWS[0], other], headers=AUTH) as r:
        results = (await r.json())["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected"]
    assert results[1]["reason"] == "unknown-region"


async def test_the_publishers_verdicts_are_the_answer_and_nothing_is_judged_twice(
    start: Callable[..., Any],
) -> None:
    # The publisher knows one community only; the source, bound without region codes,
    # would accept the other one. The answer must be the publisher's.
    known = ROWS[0]["region_code"]
    other = next(r for r in ROWS if r["region_code"] != known)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{s.getsockname()[1]}"  # prepare() never talks to Kafka
    topics = Topics("unit.")
    publisher = Publisher(
        connector="c",
        bootstrap_servers=nobody,
        topics=topics,
        resource=SAMPLE.resource,
        schema_id=1,
        codec=CODEC,
        checkpoints=CompactedTable(nobody, topics.connect_offsets),
        regions={known},
    )
    labels = {"resource": "dibao", "rule": "unknown-region"}
    before = REGISTRY.get_sample_value("govhub_quality_violations_total", labels) or 0.0
    try:
        harness, http = await start(publisher=publisher)
        async with http.post(harness.url, json=[ROWS[0], other], headers=AUTH) as r:
            results = (await r.json())["results"]
    finally:
        publisher.close()
    assert [x["status"] for x in results] == ["accepted", "rejected"]
    assert results[1]["reason"] == "unknown-region"
    after = REGISTRY.get_sample_value("govhub_quality_violations_total", labels)
    assert after == before + 1
