"""The runner's pipeline on a real broker: what reaches Kafka, byte for byte, and who judges.

- The file source through the runner: every row once, in the bytes the Python reference
  path (check, ``AvroCodec.from_json``, encode, frame) gives, with the design's headers;
  bad rows in the dead-letter topic; each file done; the checkpoint at the last row.
- The HTTP source through the runner: the answer carries the publisher's verdicts, and a
  rejected record is counted once in ``govhub_quality_violations_total``.
"""

from __future__ import annotations

import asyncio
import csv
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition
from prometheus_client import REGISTRY

from connectors.registry import default_registry
from connectors.runner import ConnectorRunner
from connectors.spec import load_spec
from hub import kafka
from hub.catalogue.admission import Admission
from hub.router.engine import (
    H_DLQ_REASON,
    H_INGESTED_AT,
    H_RECORD_ID,
    H_REGION,
    H_TRACE,
)
from tests.conformance.harness import World, conformance_rows, connector_world, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[World]:
    with connector_world(kafka_bootstrap, tmp_path) as w:
        yield w


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Message]:
    """Every message of ``topic``: at least ``expected``, then until nothing more comes."""
    consumer = kafka.consumer(bootstrap, f"pipeline-{uuid.uuid4().hex}", "pipeline-test")
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out: list[Message] = []
        quiet = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (len(out) < expected or quiet < 1):
            batch = consumer.consume(1000, 0.5)
            quiet = 0 if batch else quiet + 1
            for msg in batch:
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"reading {topic}: {err}")
        return out
    finally:
        consumer.close()


def connector_file(world: World, name: str, ctype: str, batch: int, source: str) -> Path:
    path = world.env.tmp / f"{name}.toml"
    path.write_text(
        f"""
[connector]
name = "{name}"
type = "{ctype}"
resource = "{world.env.resource.code}"
batch_size = {batch}
poll_interval_s = 0.05
stop_when_idle = {"true" if ctype == "file" else "false"}

[kafka]
bootstrap_servers = "{world.bootstrap}"
topic_prefix = "{world.topics.prefix}"

[source]
{source}
""",
        encoding="utf-8",
    )
    return path


def write_gbk_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    staging = path.with_suffix(".part")
    with staging.open("w", encoding="gbk", newline="") as f:
        out = csv.writer(f)
        out.writerow(list(rows[0]))
        for row in rows:
            out.writerow(["" if v is None else v for v in row.values()])
    os.replace(staging, path)


def test_file_rows_reach_kafka_as_the_reference_encodes_them(world: World) -> None:
    rows = conformance_rows(23)
    rows[4] = {**rows[4], "household_size": "0"}  # out of range
    rows[9] = {**rows[9], "approved_on": "2026/13/40"}  # does not convert: unparsable
    drop = world.env.tmp / "drop"
    drop.mkdir()
    write_gbk_csv(drop / "a.csv", rows[:13])
    write_gbk_csv(drop / "b.csv", rows[13:])
    types = 'household_size = "int"\namount = "decimal"\napproved_on = "date"'
    config = connector_file(
        world,
        "pipeline-file",
        "file",
        5,
        f'folder = "{drop}"\nsettle_s = 0\n\n[source.types]\n{types}\n',
    )
    spec = load_spec(config, default_registry())
    runner = ConnectorRunner(spec, spec.type.factory(spec.name, spec.settings))
    asyncio.run(runner.run(asyncio.Event()))

    assert runner.publisher is not None
    assert runner.publisher.stats.published == 21
    assert runner.publisher.stats.rejected == {"out-of-range": 1, "unparsable": 1}
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["a.csv", "b.csv"]
    checkpoint = runner.publisher.checkpoint()
    assert checkpoint is not None and checkpoint["file"] == "b.csv" and checkpoint["row"] == 11

    # The reference: the Python path on the values the file source reads from each row.
    env = world.env
    schema_id = world.state.registry.version(env.resource.subject, "latest").schema_id
    reference = Admission(env.resource, env.codec, schema_id)
    expected: dict[str, tuple[bytes, str, str]] = {}
    for index, row in enumerate(rows):
        if index in (4, 9):
            continue
        value = {**row, "household_size": int(row["household_size"])}
        admitted = reference.admit_python(value)
        assert isinstance(admitted, tuple)
        file, number = ("a.csv", index + 2) if index < 13 else ("b.csv", index - 11)
        expected[f"pipeline-file:{file}:{number}"] = admitted

    messages = read_topic(world.bootstrap, world.source_topic, len(expected))
    seen: dict[str, tuple[bytes, str, str]] = {}
    for msg in messages:
        headers = dict(msg.headers() or [])
        assert {H_REGION, H_RECORD_ID, H_INGESTED_AT, H_TRACE} <= set(headers)
        rid = headers[H_RECORD_ID].decode()
        assert rid not in seen, f"{rid} published twice"
        seen[rid] = (msg.value(), msg.key().decode(), headers[H_REGION].decode())
    assert seen == expected

    dead = read_topic(world.bootstrap, world.topics.dlq(env.resource.department), 2)
    reasons = {dict(m.headers())[H_RECORD_ID]: dict(m.headers())[H_DLQ_REASON] for m in dead}
    assert reasons == {
        b"pipeline-file:a.csv:6": b"out-of-range",
        b"pipeline-file:a.csv:11": b"unparsable",
    }


async def _post_and_stop(
    url: str, token: str, body: list[Any], runner: ConnectorRunner, stop: asyncio.Event
) -> dict[str, Any]:
    task = asyncio.create_task(runner.run(stop))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "pipeline-1"}
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # until the source listens
                try:
                    async with http.get(url.rsplit("/", 2)[0] + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            async with http.post(url, json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                answer: dict[str, Any] = await r.json()
    finally:
        stop.set()
        await task
    return answer


def test_http_answers_carry_the_publishers_verdicts_counted_once(world: World) -> None:
    rows = conformance_rows(6, start=100)
    body: list[Any] = [
        rows[0],
        {**rows[1], "household_size": 0},  # a quality rule
        {**rows[2], "region_code": "110105009009"},  # well formed, but no party has it
        {**rows[3], "surplus": 1},  # not in the schema
        "not an object",
        rows[5],
    ]
    port = free_port()
    config = connector_file(world, "pipeline-http", "http", 100, f"port = {port}")
    spec = load_spec(config, default_registry())
    runner = ConnectorRunner(spec, spec.type.factory(spec.name, spec.settings))

    def count(rule: str) -> float:
        labels = {"resource": world.env.resource.code, "rule": rule}
        return REGISTRY.get_sample_value("govhub_quality_violations_total", labels) or 0.0

    before = {rule: count(rule) for rule in ("out-of-range", "unknown-region")}
    url = f"http://127.0.0.1:{port}/v1/records"
    answer = asyncio.run(_post_and_stop(url, world.env.token, body, runner, asyncio.Event()))

    results = answer["results"]
    assert (answer["accepted"], answer["rejected"]) == (2, 4)
    assert [r["status"] for r in results] == ["accepted"] + ["rejected"] * 4 + ["accepted"]
    assert [r.get("reason") for r in results[1:5]] == [
        "out-of-range",
        "unknown-region",
        "schema-mismatch",
        "unparsable",
    ]
    assert results[1]["detail"] == "field 'household_size' is outside [1, 20] (got '0')"
    # Judged once, by the publisher: the source did not check the records again.
    assert count("out-of-range") == before["out-of-range"] + 1
    assert count("unknown-region") == before["unknown-region"] + 1
    accepted = read_topic(world.bootstrap, world.source_topic, 2)
    ids = sorted(dict(m.headers())[H_RECORD_ID].decode() for m in accepted)
    assert ids == ["pipeline-http:pipeline-1:0", "pipeline-http:pipeline-1:5"]


def test_a_lone_request_is_answered_while_the_next_read_waits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer (the source's ack) must not wait for the read that follows the batch:
    with nothing more posted, that read waits for requests, here for a minute."""
    from connectors.sources import http as http_source

    monkeypatch.setattr(http_source, "READ_WAIT_S", 60.0)
    rows = conformance_rows(2, start=200)
    port = free_port()
    config = connector_file(world, "pipeline-lone", "http", 100, f"port = {port}")
    spec = load_spec(config, default_registry())
    runner = ConnectorRunner(spec, spec.type.factory(spec.name, spec.settings))
    url = f"http://127.0.0.1:{port}/v1/records"
    headers = {"Authorization": f"Bearer {world.env.token}"}

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        timeout = aiohttp.ClientTimeout(total=20)  # far below the read's minute
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                for _ in range(100):  # until the source listens
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                async with http.post(url, json=rows[:1], headers=headers) as r:
                    first = await r.json()
                stop.set()
                # The pending read returns with this request, which is published too.
                async with http.post(url, json=rows[1:], headers=headers) as r:
                    second = await r.json()
        finally:
            stop.set()
            await task
        return first, second

    first, second = asyncio.run(scenario())
    assert first["accepted"] == 1 and second["accepted"] == 1
