"""Fuzzed bodies against the HTTP push connector on a real broker: wrong encodings, GBK
labelled as UTF-8, invalid UTF-8, huge fields, deep nesting, garbage. Whatever arrives,
the answer is never a 5xx; every record the answer rejects is in the department's
dead-letter topic with the same reason; a body that is not JSON at all is refused as a
whole (400, with the parser's message) and nothing of it is published."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.registry import default_registry
from connectors.runner import ConnectorRunner
from connectors.spec import load_spec
from hub import kafka
from hub.router.engine import H_DLQ_REASON, H_RECORD_ID
from tests.conformance.harness import World, conformance_rows, connector_world, free_port

pytestmark = pytest.mark.integration

ROWS = conformance_rows(20, start=500)
HUGE = 300_000  # characters in one field


@pytest.fixture(scope="module")
def ingest(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("ingest")
    with connector_world(kafka_bootstrap, tmp) as world:
        port = free_port()
        path = tmp / "fuzz-http.toml"
        path.write_text(
            f"""
[connector]
name = "fuzz-http"
type = "http"
resource = "{world.env.resource.code}"
batch_size = 500
poll_interval_s = 0.05
stop_when_idle = false

[kafka]
bootstrap_servers = "{world.bootstrap}"
topic_prefix = "{world.topics.prefix}"

[source]
port = {port}
max_body_bytes = 2000000
""",
            encoding="utf-8",
        )
        spec = load_spec(path, default_registry())
        runner = ConnectorRunner(spec, spec.type.factory(spec.name, spec.settings))
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        thread = threading.Thread(
            target=loop.run_until_complete, args=(runner.run(stop),), daemon=True
        )
        thread.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "the HTTP source did not start"
                time.sleep(0.1)
        rejected: dict[str, str] = {}
        yield world, url + "/v1/records", rejected
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def post(url: str, token: str, body: bytes, content_type: str, key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", content_type)
    request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _deep(depth: int) -> bytes:
    return b'{"name": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


def _gbk_row(row: dict[str, Any]) -> bytes:
    # A valid row, encoded GBK and sent as UTF-8: the Chinese name becomes invalid UTF-8.
    return orjson.dumps(row).decode().encode("gbk")


lines = st.one_of(
    st.sampled_from(ROWS).map(_json),
    st.sampled_from(ROWS).map(_gbk_row),
    st.sampled_from(ROWS).map(lambda r: _json({**r, "name": "张" * HUGE})),
    st.sampled_from(ROWS).map(lambda r: _json({**r, "address": {"nested": [r] * 3}})),
    st.sampled_from(ROWS).map(lambda r: _json({**r, "household_size": "十"})),
    st.integers(1, 5000).map(_deep),
    st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.text(max_size=40)
    .map(lambda t: t.encode("utf-8", "surrogatepass"))
    .filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.just(b'"just a string"'),
    st.just(b"\xef\xbb\xbf" + _json(ROWS[0])),  # a BOM in front
    st.just(b"\xff\xfe" + _json(ROWS[1]).decode().encode("utf-16-le")),
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    parts = draw(st.lists(lines, min_size=1, max_size=6))
    shape = draw(st.sampled_from(["ndjson", "array", "raw"]))
    if shape == "ndjson":
        body = b"\n".join(parts)
    elif shape == "array":
        body = b"[" + b",".join(parts) + b"]"
    else:
        body = parts[0]
    content_type = draw(
        st.sampled_from(
            [
                "application/x-ndjson",
                "application/json",
                "application/json; charset=utf-8",
                "text/plain; charset=gbk",
                "application/octet-stream",
            ]
        )
    )
    return body, content_type


FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_fuzzed_bodies_never_5xx_and_every_rejection_is_dead_lettered(ingest: Any) -> None:
    world, url, rejected = ingest
    statuses: dict[int, int] = {}

    @FUZZ
    @given(case=bodies())
    def send(case: tuple[bytes, str]) -> None:
        body, content_type = case
        key = f"fz-{uuid.uuid4().hex[:12]}"
        status, raw = post(url, world.env.token, body, content_type, key)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (status, raw[:300])
        answer = orjson.loads(raw)
        if status == 200:
            assert answer["accepted"] + answer["rejected"] == len(answer["results"])
            for index, result in enumerate(answer["results"]):
                if result["status"] == "rejected":
                    assert result["reason"] and result["detail"]
                    rejected[f"fuzz-http:{key}:{index}"] = result["reason"]
        else:
            assert status in (400, 413) and answer["error"], (status, answer)

    send()
    assert statuses.get(200) and rejected, f"the fuzz run rejected nothing: {statuses}"
    _assert_dead_lettered(world, rejected)


def _assert_dead_lettered(world: World, rejected: dict[str, str]) -> None:
    topic = world.topics.dlq(world.env.resource.department)
    found: dict[str, str] = {}
    consumer = kafka.consumer(world.bootstrap, f"fuzz-{uuid.uuid4().hex}", "fuzz-dlq-reader")
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 60
        while not set(rejected) <= set(found) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.3):
                if msg.error() is not None:
                    assert msg.error().code() == KafkaError._PARTITION_EOF
                    continue
                headers = dict(msg.headers() or [])
                found[headers[H_RECORD_ID].decode()] = headers[H_DLQ_REASON].decode()
    finally:
        consumer.close()
    missing = {rid: reason for rid, reason in rejected.items() if found.get(rid) != reason}
    assert not missing, f"{len(missing)} rejections not dead-lettered with their reason: {missing}"
