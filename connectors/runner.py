"""Runs one source connector: read → admit → produce → confirm → checkpoint → ack.

Kafka produce and flush are blocking librdkafka calls: they run in a worker thread so the
source's event loop (an HTTP server, a database driver) is never blocked.

The loop overlaps the source with Kafka: while batch N is on its way to the broker (and
its checkpoint is written), the runner reads the next batches and admits them (quality
rules and Avro encoding). Batch N+1 is produced only once N's checkpoint is written, so
one batch at most is in Kafka without a checkpoint: a crash replays at most that batch.
The source is acknowledged batch by batch, in order, as soon as each checkpoint is
written — never held up by a read in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from typing import Any

from connectors.base import Source, SourceRecord
from connectors.publisher import Batch, Publisher, SignInAudited, VerdictReceiver
from connectors.spec import ConnectorSpec
from hub import metrics
from hub.audit.events import AuditWriter
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.model import Resource
from hub.config import ConfigError
from hub.controlstate import CompactedTable
from hub.registry.store import SchemaRegistry
from hub.topics import Topics

log = logging.getLogger(__name__)

# Batches read but not yet acknowledged: the one in flight and the next, admitted and
# waiting its turn; one more while the source has a backlog (its last read was full).
READ_AHEAD = 2


class ConnectorRunner:
    """Owns the Kafka side of a source connector (publisher, checkpoints, catalogue)."""

    def __init__(self, spec: ConnectorSpec, source: Source) -> None:
        self.spec = spec
        self.source = source
        kafka = spec.file.kafka
        self.topics = Topics(kafka.topic_prefix)
        self._tables = [
            CompactedTable(kafka.bootstrap_servers, t, client_config=kafka.client_config)
            for t in (
                self.topics.catalogue,
                self.topics.schemas,
                self.topics.connect_offsets,
                self.topics.parties,
            )
        ]
        self.publisher: Publisher | None = None
        self._audit: AuditWriter | None = None  # refused sign-ins, for sources that sign in
        self._last_checkpoint = time.monotonic()

    def _open(self) -> Publisher:
        """Load the resource and its latest schema; fail with a clear message if absent."""
        catalogue, schemas, checkpoints, parties = self._tables
        for table in self._tables:
            table.start()
        code = self.spec.file.connector.resource
        row = catalogue.get(code)
        if row is None:
            raise ConfigError(f"connector.resource: {code!r} is not in the catalogue")
        resource = Resource.model_validate(row)
        registry = SchemaRegistry(schemas)
        try:
            latest = registry.version(resource.subject, "latest")
        except KeyError:
            raise ConfigError(f"resource {code!r} has no schema under {resource.subject}") from None
        kafka = self.spec.file.kafka
        regions = PartyRegions(parties)
        codec = registry.codec(latest.schema_id)
        self.source.bind(resource, codec, parties, regions)
        if isinstance(self.source, SignInAudited):
            self._audit = AuditWriter(
                kafka.bootstrap_servers,
                self.topics,
                kafka.client_config,
                role=f"connector-{self.spec.name}",
            )
            self.source.audit_sign_ins(self._audit.write)
        return Publisher(
            connector=self.spec.name,
            bootstrap_servers=kafka.bootstrap_servers,
            topics=self.topics,
            resource=resource,
            schema_id=latest.schema_id,
            codec=codec,
            checkpoints=checkpoints,
            client_config=kafka.client_config,
            regions=regions,
            confirm_timeout_s=self.spec.file.connector.confirm_timeout_s,
        )

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.publisher = publisher = await loop.run_in_executor(None, self._open)
        section = self.spec.file.connector
        name = self.spec.name
        self._last_checkpoint = time.monotonic()
        # Publishing jobs (admit, then produce, confirm and checkpoint in turn), oldest
        # first; the source is acknowledged job by job, as soon as each one is done.
        jobs: deque[asyncio.Future[Batch]] = deque()
        reading: asyncio.Future[list[SourceRecord]] | None = None
        backlog = False  # the last read filled a batch: the source has more waiting
        held = False  # the last read found nothing while jobs were open: wait for an ack
        try:
            # Batches in flight keep tens of thousands of objects alive long enough to reach
            # the oldest generation, so full collections come every few batches; without
            # this each one would also scan everything start-up built (modules, models,
            # tables): about a tenth of the run. Frozen objects are still freed by
            # reference counting; the heap is unfrozen when the run ends.
            gc.collect()
            gc.freeze()
            await self.source.connect(publisher.checkpoint())
            log.info("connector started", extra={"connector": name, "resource": section.resource})
            while True:
                ahead = READ_AHEAD + 1 if backlog else READ_AHEAD
                if reading is None and not held and not stop.is_set() and len(jobs) < ahead:
                    reading = asyncio.ensure_future(self.source.read(section.batch_size))
                waiting: set[asyncio.Future[Any]] = {jobs[0]} if jobs else set()
                if reading is not None:
                    waiting.add(reading)
                if not waiting:
                    break  # stopped, and everything read is acknowledged
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if jobs and jobs[0] in done:
                    batch = jobs[0].result()  # raises what the job raised
                    jobs.popleft()
                    await self._acknowledge(batch)
                    held = False
                if reading is None or reading not in done:
                    continue
                records = reading.result()
                reading = None
                lag = self.source.lag()
                if lag is not None:
                    metrics.CONNECTOR_LAG.labels(name).set(lag)
                metrics.CONNECTOR_CHECKPOINT_AGE.labels(name).set(
                    time.monotonic() - self._last_checkpoint
                )
                backlog = len(records) >= section.batch_size
                if records:
                    turn = publisher.take_turn()
                    jobs.append(loop.run_in_executor(None, publisher.publish, records, turn))
                elif jobs:
                    held = True  # after the next ack the source may have more at once
                elif section.stop_when_idle:
                    break
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), section.poll_interval_s)
        finally:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
            for job in jobs:  # after a failure: the jobs end (later ones refuse to send)
                with contextlib.suppress(BaseException):
                    await job
            await self.source.close()
            await loop.run_in_executor(None, self._close)
            gc.unfreeze()

    async def _acknowledge(self, batch: Batch) -> None:
        """Kafka acknowledged the batch and its checkpoint is written: hand the verdicts
        to the source and let it go of the records."""
        self._last_checkpoint = time.monotonic()
        if isinstance(self.source, VerdictReceiver):
            self.source.receive_verdicts(batch.records, batch.rejections)
        await self.source.ack(batch.records)

    def _close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        if self._audit is not None:
            self._audit.close()
        for table in self._tables:
            table.stop()
