"""Runs one source connector: read → validate → publish → checkpoint → ack, until stopped.

Kafka produce and flush are blocking librdkafka calls: they run in a worker thread so the
source's event loop (an HTTP server, a database driver) is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from connectors.base import Source
from connectors.publisher import Publisher
from connectors.spec import ConnectorSpec
from hub import metrics
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.model import Resource
from hub.config import ConfigError
from hub.controlstate import CompactedTable
from hub.registry.store import SchemaRegistry
from hub.topics import Topics

log = logging.getLogger(__name__)


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
        )

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.publisher = publisher = await loop.run_in_executor(None, self._open)
        section = self.spec.file.connector
        name = self.spec.name
        last_checkpoint = time.monotonic()
        try:
            await self.source.connect(publisher.checkpoint())
            log.info("connector started", extra={"connector": name, "resource": section.resource})
            while not stop.is_set():
                records = await self.source.read(section.batch_size)
                lag = self.source.lag()
                if lag is not None:
                    metrics.CONNECTOR_LAG.labels(name).set(lag)
                metrics.CONNECTOR_CHECKPOINT_AGE.labels(name).set(
                    time.monotonic() - last_checkpoint
                )
                if not records:
                    if section.stop_when_idle:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), section.poll_interval_s)
                    continue
                started = time.perf_counter()
                await loop.run_in_executor(None, publisher.publish, records)
                metrics.CONNECTOR_BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
                last_checkpoint = time.monotonic()
                await self.source.ack(records)
        finally:
            await self.source.close()
            await loop.run_in_executor(None, self._close)

    def _close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        for table in self._tables:
            table.stop()
