import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.base import Backpressure
from connectors.sinks.base import Cursor, DeliveredRecord
from connectors.sinks.webhook import (
    WebhookConfigError,
    WebhookSink,
    WebhookSinkConfig,
    backoff_delay,
)

SEQ = {"v": 1, "last": []}


def rec(i: int) -> DeliveredRecord:
    return DeliveredRecord("dibao", "s", f"r{i}", "t", 0, i, 1, 2, {"i": i, "amount": Decimal("2")})


@dataclass
class Receiver:
    """A scripted webhook endpoint: answers[i] is (status, headers, delay) for POST i."""

    answers: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)  # type: ignore[type-arg]
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        status, headers, delay = self.answers.pop(0) if self.answers else (200, {}, 0.0)
        if delay:
            await asyncio.sleep(delay)
        self.headers.append(dict(request.headers))
        if status == 200:
            self.bodies.append(orjson.loads(await request.read()))
        return web.Response(status=status, headers=headers, text="nope" if status >= 400 else "")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rx.url = str(server.make_url("/hook"))
    yield rx
    await server.close()


def make_sink(tmp_path: Path, url: str, **overrides: object) -> WebhookSink:
    settings: dict[str, object] = {
        "url": url,
        "state_dir": tmp_path / "state",
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 2.0,
        "max_attempts": 3,
        "auth_token": "s3cret",
    }
    settings.update(overrides)
    return WebhookSink(WebhookSinkConfig.model_validate(settings), random.Random(1))


async def write(sink: WebhookSink, records: list[DeliveredRecord], cursor: Cursor) -> None:
    await asyncio.to_thread(sink.write, records, cursor)


async def test_server_errors_are_retried_then_delivered(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answers = [(500, {}, 0.0), (502, {}, 0.0)]
    sink = make_sink(tmp_path, receiver.url)
    await write(sink, [rec(1), rec(2)], Cursor(0, 3, SEQ))
    assert sink.posts == 3 and sink.dead_lettered == 0
    assert [r["record_id"] for r in receiver.bodies[0]["records"]] == ["r1", "r2"]
    assert receiver.bodies[0]["records"][0]["data"]["amount"] == "2"
    assert receiver.headers[0]["Authorization"] == "Bearer s3cret"
    assert receiver.headers[0]["Idempotency-Key"] == "0-3-0"
    assert sink.load_cursor() == Cursor(0, 3, SEQ)


async def test_a_batch_that_keeps_failing_goes_to_the_dead_letter_folder(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers = [(500, {}, 0.0)] * 3
    sink = make_sink(tmp_path, receiver.url)
    await write(sink, [rec(1)], Cursor(0, 2, SEQ))
    assert sink.posts == 3 and sink.dead_lettered == 1
    letters = list((tmp_path / "state" / "dead-letter").glob("*.json"))
    assert len(letters) == 1
    doc = orjson.loads(letters[0].read_bytes())
    assert doc["status"] == 500 and doc["attempts"] == 3
    assert doc["records"][0]["record_id"] == "r1"
    # Only now does the cursor move on.
    assert sink.load_cursor() == Cursor(0, 2, SEQ)


async def test_refused_content_is_dead_lettered_without_retrying(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers = [(422, {}, 0.0)]
    sink = make_sink(tmp_path, receiver.url)
    await write(sink, [rec(1)], Cursor(0, 2, SEQ))
    assert sink.posts == 1 and sink.dead_lettered == 1


async def test_busy_receiver_is_backpressure_and_sent_parts_are_not_repeated(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers = [(200, {}, 0.0), (429, {"Retry-After": "0.03"}, 0.0)]
    sink = make_sink(tmp_path, receiver.url, max_records_per_post=1)
    batch, cursor = [rec(1), rec(2), rec(3)], Cursor(0, 4, SEQ)
    with pytest.raises(Backpressure) as raised:
        await write(sink, batch, cursor)
    assert raised.value.retry_after == pytest.approx(0.03)
    assert sink.load_cursor() is None  # nothing acknowledged yet
    await write(sink, batch, cursor)  # what the SDK does after waiting
    assert [b["records"][0]["record_id"] for b in receiver.bodies] == ["r1", "r2", "r3"]
    assert sink.load_cursor() == cursor and sink.dead_lettered == 0


async def test_auth_failure_stops_without_acknowledging(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answers = [(401, {}, 0.0)]
    sink = make_sink(tmp_path, receiver.url)
    with pytest.raises(WebhookConfigError, match="401"):
        await write(sink, [rec(1)], Cursor(0, 2, SEQ))
    assert sink.load_cursor() is None and sink.dead_lettered == 0


async def test_a_slow_receiver_times_out_and_is_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answers = [(200, {}, 1.0)]
    sink = make_sink(tmp_path, receiver.url, timeout_s=0.2)
    await write(sink, [rec(1)], Cursor(0, 2, SEQ))
    assert sink.posts == 2 and sink.dead_lettered == 0


async def test_unreachable_receiver_dead_letters(tmp_path: Path, unused_tcp_port: int) -> None:
    sink = make_sink(tmp_path, f"http://127.0.0.1:{unused_tcp_port}/hook", max_attempts=2)
    await write(sink, [rec(1)], Cursor(0, 2, SEQ))
    letters = list((tmp_path / "state" / "dead-letter").glob("*.json"))
    assert len(letters) == 1 and orjson.loads(letters[0].read_bytes())["status"] is None


def test_empty_batches_only_move_the_cursor(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, "http://127.0.0.1:9/never")
    sink.write([], Cursor(0, 7, SEQ))
    assert sink.posts == 0 and sink.load_cursor() == Cursor(0, 7, SEQ)


@pytest.mark.parametrize("attempt", [1, 2, 5, 20])
def test_backoff_grows_is_capped_and_jittered(attempt: int) -> None:
    rng = random.Random(attempt)
    delays: list[float] = [backoff_delay(attempt, 0.5, 8.0, rng) for _ in range(50)]
    ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


def test_config_errors_name_the_field() -> None:
    from pydantic import ValidationError

    check: Callable[[dict[str, object]], object] = WebhookSinkConfig.model_validate
    with pytest.raises(ValidationError, match="url"):
        check({"url": "ftp://x", "state_dir": "/tmp/x"})
    with pytest.raises(ValidationError, match="max_attempts"):
        check({"url": "http://x", "state_dir": "/tmp/x", "max_attempts": 0})
