"""What every source connector does, checked the same way for each case in ``cases_*.py``:
open/close, batches, and at-least-once delivery through a graceful reconnect, a broker
restart and a ``kill -9`` of the connector process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from connectors.base import Source, SourceRecord
from connectors.registry import default_registry
from connectors.runner import ConnectorRunner
from connectors.spec import load_spec
from hub.localkafka import LocalKafka
from tests.conformance.harness import (
    ConnectorCase,
    ConnectorProcess,
    Feeder,
    TopicContents,
    TopicWatcher,
    World,
    assert_complete,
    conformance_rows,
)

pytestmark = pytest.mark.integration

BATCH = 20
RESTART_ROWS = 4000


def make_source(case: ConnectorCase, world: World, name: str = "cf-source") -> Source:
    ctype = default_registry().get(case.type)
    source: Source = ctype.factory(
        name, ctype.config_model.model_validate(case.settings(world.env))
    )
    return source


@contextlib.asynccontextmanager
async def feeding(case: ConnectorCase, world: World, rows: Sequence[dict]) -> AsyncIterator[Feeder]:  # type: ignore[type-arg]
    feeder = case.feed(world.env, rows)
    feeder.start()
    try:
        yield feeder
    finally:
        await asyncio.to_thread(feeder.stop)


class InProcessConnector:
    """``ConnectorRunner`` on this event loop, as ``govhub connector run`` drives it."""

    def __init__(self, case: ConnectorCase, world: World, name: str) -> None:
        config = world.connector_file(case, name, BATCH)
        spec = load_spec(config, default_registry())
        self.runner = ConnectorRunner(spec, spec.type.factory(spec.name, spec.settings))
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.runner.run(self.stop))

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 60)


async def wait_for(
    watcher: TopicWatcher,
    predicate: object,
    timeout: float,
    what: str,
    runner: InProcessConnector | None = None,
) -> TopicContents:
    """Poll the topic off the event loop (the connector runs on it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        contents = await asyncio.to_thread(watcher.poll)
        if predicate(contents):  # type: ignore[operator]
            return contents
        if runner is not None and runner.task.done():
            runner.task.result()  # raises the connector's error
            raise AssertionError(f"the connector stopped before {what}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}: "
                f"{len(contents.keys)} keys, {len(contents.records)} records"
            )


# -- the source contract -----------------------------------------------------------------


async def test_open_close(case: ConnectorCase, world: World) -> None:
    async with feeding(case, world, []):
        source = make_source(case, world)
        await source.connect(None)
        assert await asyncio.wait_for(source.read(10), case.idle_read_s + 10) == []
        await source.close()
        await source.close()  # idempotent
        async with make_source(case, world) as again:
            await again.connect(None)
        await make_source(case, world).close()  # closing an unopened source is fine


async def test_batches(case: ConnectorCase, world: World) -> None:
    rows = conformance_rows(25)
    async with feeding(case, world, rows) as feeder:
        source = make_source(case, world)
        await source.connect(None)
        got: list[SourceRecord] = []
        try:
            async with asyncio.timeout(30):
                while len(got) < len(rows):
                    batch = await source.read(10)
                    assert len(batch) <= 10
                    got.extend(batch)
                    await source.ack(batch)
            await asyncio.to_thread(feeder.wait, 10)
            assert await asyncio.wait_for(source.read(10), case.idle_read_s + 10) == []
        finally:
            await source.close()
    assert len({r.record_id for r in got}) == len(rows), "record ids must be unique"
    assert all(r.position for r in got), "every record carries its position"
    assert all(r.error is None and r.value is not None for r in got), [r.error for r in got]
    assert {r.value["id_card"] for r in got if r.value} == {row["id_card"] for row in rows}


# -- at-least-once -----------------------------------------------------------------------


async def test_reconnect_resumes_from_the_checkpoint(case: ConnectorCase, world: World) -> None:
    rows = conformance_rows(300)
    watcher = TopicWatcher(world.bootstrap, world.source_topic)
    try:
        async with feeding(case, world, rows) as feeder:
            first = InProcessConnector(case, world, "cf-reconnect")
            await wait_for(watcher, lambda c: len(c.keys) >= 80, 60, "80 records", first)
            await first.finish()
            second = InProcessConnector(case, world, "cf-reconnect")
            contents = await wait_for(
                watcher, lambda c: c.keys >= {r["id_card"] for r in rows}, 60, "all", second
            )
            await asyncio.to_thread(feeder.wait, 30)
            await second.finish()
        assert_complete(contents, rows, case.window(BATCH))
    finally:
        watcher.close()


async def test_at_least_once_through_a_broker_restart(
    case: ConnectorCase, restart_world: World, private_kafka: LocalKafka
) -> None:
    world = restart_world
    # Enough rows that the restart lands mid-stream however fast the connector is.
    rows = conformance_rows(RESTART_ROWS)
    watcher = TopicWatcher(world.bootstrap, world.source_topic)
    try:
        async with feeding(case, world, rows) as feeder:
            connector = InProcessConnector(case, world, "cf-restart")
            seen = await wait_for(
                watcher, lambda c: len(c.keys) >= 100, 60, "100 records", connector
            )
            assert len(seen.keys) < len(rows), "the connector finished before the restart"
            await asyncio.to_thread(private_kafka.down)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(private_kafka.up, 120)
            contents = await wait_for(
                watcher,
                lambda c: c.keys >= {r["id_card"] for r in rows},
                120,
                "all records after the restart",
                connector,
            )
            await asyncio.to_thread(feeder.wait, 60)
            await connector.finish()
        assert_complete(contents, rows, case.window(BATCH))
    finally:
        watcher.close()


def test_kill_9_mid_stream_then_restart(case: ConnectorCase, world: World) -> None:
    rows = conformance_rows(RESTART_ROWS)
    config = world.connector_file(case, "cf-kill", BATCH)
    process = ConnectorProcess(config, world.env.tmp / "connector.log")
    watcher = TopicWatcher(world.bootstrap, world.source_topic)
    feeder = case.feed(world.env, rows)
    try:
        feeder.start()
        process.start()
        watcher.wait_for(lambda c: len(c.keys) >= 200, 60, "200 records before the kill")
        assert process.alive(), process.output()
        process.kill9()
        partial = len(watcher.poll(1.0).keys)
        assert partial < len(rows), "the connector finished before it could be killed mid-stream"
        process.start()
        contents = watcher.wait_for(
            lambda c: c.keys >= {r["id_card"] for r in rows}, 90, "all records after the restart"
        )
        feeder.wait(60)
        assert process.terminate() == 0, process.output()
        assert_complete(contents, rows, case.window(BATCH))
    except BaseException:
        print(process.output())
        raise
    finally:
        feeder.stop()
        if process.alive():
            process.kill9()
        watcher.close()
