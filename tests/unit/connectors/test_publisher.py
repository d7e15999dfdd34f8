"""The publisher's batch steps without a broker: verdicts, one batch in flight, failures.

The producer is real and points at a port nobody listens on, with a short message timeout:
nothing is ever acknowledged, which is what the failure paths need.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from connectors.base import SourceRecord
from connectors.publisher import Publisher, PublishError, Rejection
from hub.catalogue.samples import load_sample
from hub.controlstate import CompactedTable
from hub.demo.world import generate_records
from hub.registry.schemas import AvroCodec
from hub.topics import Topics

SAMPLE = load_sample("mzj.dibao")
ROWS = generate_records(4, invalid=0)


def dead_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    bootstrap = dead_port()
    topics = Topics("unit.")
    checkpoints = CompactedTable(bootstrap, topics.connect_offsets)  # never started
    made = Publisher(
        connector="unit",
        bootstrap_servers=bootstrap,
        topics=topics,
        resource=SAMPLE.resource,
        schema_id=7,
        codec=AvroCodec(SAMPLE.schema_json),
        checkpoints=checkpoints,
        client_config={"message.timeout.ms": "300", "socket.connection.setup.timeout.ms": "1000"},
        regions={r["region_code"] for r in ROWS},
    )
    yield made
    made.close()


def records(start: int = 0) -> list[SourceRecord]:
    bad = {**ROWS[1], "household_size": 0}
    return [
        SourceRecord(f"u:{start}", ROWS[0], {"n": start}),
        SourceRecord(f"u:{start + 1}", bad, {"n": start + 1}),
        SourceRecord(f"u:{start + 2}", None, {"n": start + 2}, b"{x", "invalid JSON"),
        SourceRecord(f"u:{start + 3}", {**ROWS[3], "region_code": "110105009009"}, {"n": 3}),
    ]


def test_prepare_gives_a_verdict_per_record(publisher: Publisher) -> None:
    batch = publisher.prepare(records())
    assert batch.published == 1 and not batch.sent
    assert batch.rejections == {
        1: Rejection("out-of-range", "field 'household_size' is outside [1, 20] (got '0')"),
        2: Rejection("unparsable", "invalid JSON"),
        3: Rejection(
            "unknown-region",
            "region code 110105009009 in 'region_code' is not in the party hierarchy "
            "or the reference list",
        ),
    }
    value, key, region = batch.verdicts[0]  # type: ignore[misc]
    assert value[:5] == b"\x00\x00\x00\x00\x07" and key == ROWS[0]["id_card"]
    assert region == ROWS[0]["region_code"]
    # Counted as read when prepared; published and rejected only once Kafka confirms.
    assert publisher.stats.read == 4 and publisher.stats.published == 0
    assert publisher.stats.rejected == {}


def test_one_batch_in_flight_and_nothing_after_a_failure(publisher: Publisher) -> None:
    first, second = publisher.prepare(records()), publisher.prepare(records(10))
    publisher.send(first)
    with pytest.raises(RuntimeError, match="sent already"):
        publisher.send(first)
    with pytest.raises(RuntimeError, match="not confirmed in time"):
        publisher.send(second, wait_s=0.2)
    # Another thread waits its turn; the confirmation fails (nothing is acknowledged)...
    outcome: list[BaseException | None] = []

    def send_second() -> None:
        try:
            publisher.send(second)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=send_second)
    waiting.start()
    time.sleep(0.1)
    assert not outcome, "the second batch waits for the first to be confirmed"
    with pytest.raises(PublishError, match="not acknowledged"):
        publisher.confirm(first)
    waiting.join(10)
    # ...so the waiting batch is refused: it must not follow a batch without a checkpoint.
    assert len(outcome) == 1 and isinstance(outcome[0], PublishError)
    assert "an earlier batch failed" in str(outcome[0])
    assert not first.confirmed and not second.sent
    assert publisher.stats.published == 0
    with pytest.raises(RuntimeError, match="not the one in flight"):
        publisher.confirm(second)
