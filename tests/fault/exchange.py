"""The city world running on a broker: an in-process api, publishers, router processes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import SourceRecord
from connectors.publisher import Publisher
from hub import kafka
from hub.catalogue.known_regions import PartyRegions
from hub.config import HubConfig, isolated_config
from hub.controlstate import CompactedTable
from hub.runtime import HubRuntime
from tests.fault.cityworld import (
    CityWorld,
    SourceRow,
    build_city,
    entitlements,
    generate_rows,
    provision,
)
from tests.fault.delivery_check import Report, check_deliveries
from tests.fault.routers import GroupProbe, RouterProcess

# Many small transactions (at most 2,000 records or 100 ms each), so every fault meets some
# in flight; a 6 s session (the broker's minimum) moves a dead router's partitions on soon.
ROUTER_SETTINGS = {
    "consume_batch": 500,
    "max_transaction_records": 2000,
    "transaction_interval_ms": 100,
    "session_timeout_ms": 6000,
}


@dataclass
class Exchange:
    config: HubConfig
    runtime: HubRuntime
    world: CityWorld
    rows: list[SourceRow]
    expected: dict[str, set[str]]
    schema_ids: dict[str, int]
    checkpoints: CompactedTable
    routers: list[RouterProcess] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.config.kafka.bootstrap_servers

    @property
    def source_topics(self) -> list[str]:
        topics = self.runtime.state.topics
        return [topics.source(s.resource.department, c) for c, s in self.world.samples.items()]

    def router(self, index: int) -> RouterProcess:
        """Router ``index`` of the group; restarts reuse its transactional id."""
        router = RouterProcess(
            self.config,
            f"router-{index}",
            f"{self.config.router.transactional_id}-{index}",
            ROUTER_SETTINGS,
        )
        self.routers.append(router)
        return router

    def probe(self) -> GroupProbe:
        return GroupProbe(self.bootstrap, self.config.router.group_id, self.source_topics)

    def publish_in_background(self, rate: float, batch: int = 2000) -> BackgroundPublisher:
        return BackgroundPublisher(self, rate, batch)

    def check(self) -> Report:
        state = self.runtime.state
        state.schemas.catch_up(10)
        return check_deliveries(
            self.bootstrap,
            state.topics,
            self.world,
            self.rows,
            self.expected,
            self.runtime.kms,
            state.registry.schema,
        )


class BackgroundPublisher:
    """Publishes every row through the connectors' publisher (one per resource), in
    interleaved batches at ``rate`` records per second, on a thread: the stream keeps
    flowing while routers and the broker die, whatever the speed of the machine."""

    def __init__(self, exchange: Exchange, rate: float, batch: int) -> None:
        self._exchange = exchange
        self._rate = rate
        self._batch = batch
        self._thread = threading.Thread(target=self._run, name="fault-publisher", daemon=True)
        self.published = 0
        self.error: BaseException | None = None
        self.rejected: dict[str, int] = {}

    def _run(self) -> None:
        ex = self._exchange
        state = ex.runtime.state
        publishers: dict[str, Publisher] = {}
        began = time.monotonic()
        try:
            regions = PartyRegions(state.parties)
            for code, sample in ex.world.samples.items():
                publishers[code] = Publisher(
                    connector=f"fault-{code}",
                    bootstrap_servers=ex.bootstrap,
                    topics=state.topics,
                    resource=sample.resource,
                    schema_id=ex.schema_ids[code],
                    codec=state.registry.codec(ex.schema_ids[code]),
                    checkpoints=ex.checkpoints,
                    regions=regions,
                )
            for start in range(0, len(ex.rows), self._batch):
                ahead = began + start / self._rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                chunk = ex.rows[start : start + self._batch]
                by_resource: dict[str, list[SourceRecord]] = {}
                for n, row in enumerate(chunk, start):
                    by_resource.setdefault(row.resource, []).append(
                        SourceRecord(row.record_id, row.row, {"n": n})
                    )
                for code, records in by_resource.items():
                    publishers[code].publish(records)
                self.published += len(chunk)
        except BaseException as exc:
            self.error = exc
        finally:
            for code, publisher in publishers.items():
                publisher.close()
                for reason, count in publisher.stats.rejected.items():
                    self.rejected[f"{code}:{reason}"] = count

    def __enter__(self) -> BackgroundPublisher:
        self._thread.start()
        return self

    def join(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "publishing did not finish"
        assert self.error is None, f"publishing failed: {self.error!r}"
        assert not self.rejected, f"records rejected by the connectors: {self.rejected}"
        assert self.published == len(self._exchange.rows)

    def __exit__(self, *exc: object) -> None:
        self._thread.join(120)


@contextmanager
def open_exchange(
    bootstrap: str, tmp: Path, counts: dict[str, int], credentials_for: tuple[str, ...] = ()
) -> Iterator[Exchange]:
    """A hub of its own (topic prefix, group, KEK) with the city provisioned; the api role
    runs in this process, routers are started by the test."""
    prefix = f"ft{uuid.uuid4().hex[:8]}."
    config = isolated_config(bootstrap, prefix, tmp / "state")
    runtime = HubRuntime(config, ("api",))
    runtime.start()
    checkpoints = CompactedTable(bootstrap, runtime.state.topics.connect_offsets)
    routers: list[RouterProcess] = []
    try:
        runtime.wait_ready()
        checkpoints.start()
        world = build_city(int(time.time() * 1000), credentials_for)
        schema_ids = provision(runtime.state, kafka.admin_client(bootstrap), world)
        rows = generate_rows(world, counts)
        expected = entitlements(world, rows)
        exchange = Exchange(config, runtime, world, rows, expected, schema_ids, checkpoints)
        routers = exchange.routers
        yield exchange
    finally:
        for router in routers:
            if router.alive:
                router.kill()
        checkpoints.stop()
        runtime.stop()
