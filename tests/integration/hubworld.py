"""A running hub on the test broker with the demo's world provisioned, per test."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from connectors.base import SourceRecord
from connectors.publisher import Publisher
from connectors.sdk.client import SubscriberClient, SubscriberSettings
from connectors.sinks.jsonl import JsonlSink
from hub import kafka
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.samples import SampleResource, load_sample
from hub.config import HubConfig, isolated_config
from hub.controlstate import CompactedTable
from hub.demo.world import Member, build_members, build_subscriptions, provision
from hub.runtime import HubRuntime


@dataclass
class HubWorld:
    config: HubConfig
    runtime: HubRuntime
    sample: SampleResource
    members: dict[str, Member]
    schema_id: int
    tmp: Path
    checkpoints: CompactedTable

    @property
    def bootstrap(self) -> str:
        return self.config.kafka.bootstrap_servers

    def publisher(self, name: str = "test-connector") -> Publisher:
        return Publisher(
            connector=name,
            bootstrap_servers=self.bootstrap,
            topics=self.runtime.state.topics,
            resource=self.sample.resource,
            schema_id=self.schema_id,
            codec=self.runtime.state.registry.codec(self.schema_id),
            checkpoints=self.checkpoints,
            regions=PartyRegions(self.runtime.state.parties),
        )

    def publish(self, rows: Sequence[dict[str, Any]], start: int = 0) -> Publisher:
        publisher = self.publisher()
        records = [
            SourceRecord(f"test:{start + i}", row, {"n": start + i}) for i, row in enumerate(rows)
        ]
        publisher.publish(records)
        publisher.close()
        return publisher

    def subscriber(self, recipient: str, sink_name: str | None = None) -> SubscriberClient:
        member = self.members[recipient]
        settings = SubscriberSettings(
            bootstrap_servers=self.bootstrap,
            recipient=recipient,
            api_url=self.runtime.api_url,
            token=member.token,
            private_key=member.private_key,
            topic_prefix=self.config.kafka.topic_prefix,
        )
        sink = JsonlSink(self.tmp / "received" / f"{sink_name or recipient}.jsonl")
        return SubscriberClient(settings, sink)

    def receive(self, recipient: str, expect: int, timeout: float = 60.0) -> SubscriberClient:
        """Run a subscriber until it has ``expect`` records (or ``timeout``)."""
        client = self.subscriber(recipient)
        stop = threading.Event()
        thread = threading.Thread(target=client.run, args=(stop,), daemon=True)
        thread.start()
        deadline = threading.Event()
        waited = 0.0
        while client.records < expect and waited < timeout and thread.is_alive():
            deadline.wait(0.1)
            waited += 0.1
        # Let anything beyond the expectation (a duplicate would show here) arrive too.
        deadline.wait(1.0)
        stop.set()
        thread.join(10)
        return client

    def consumer(self, topic: str) -> Consumer:
        c = kafka.consumer(self.bootstrap, f"test-{uuid.uuid4().hex}", "test-reader")
        c.subscribe([topic])
        return c


@contextmanager
def hub_world(
    bootstrap: str,
    tmp: Path,
    roles: tuple[str, ...] = ("api", "router"),
    **overrides: Any,
) -> Iterator[HubWorld]:
    """A hub on ``bootstrap`` with its own topic prefix; ``roles`` run in this process;
    ``overrides`` are dotted config keys (``{"router.exactly_once": False}``)."""
    prefix = f"it{uuid.uuid4().hex[:8]}."
    config = isolated_config(
        bootstrap, prefix, tmp / "state", **{"router.transaction_interval_ms": 100, **overrides}
    )
    runtime = HubRuntime(config, roles)
    runtime.start()
    checkpoints = CompactedTable(bootstrap, runtime.state.topics.connect_offsets)
    try:
        runtime.wait_ready()
        checkpoints.start()
        sample = load_sample("mzj.dibao")
        members = build_members()
        admin = kafka.admin_client(bootstrap)
        schema_id = provision(
            runtime.state, admin, sample, members, build_subscriptions(sample.resource.code)
        )
        yield HubWorld(config, runtime, sample, members, schema_id, tmp, checkpoints)
    finally:
        checkpoints.stop()
        runtime.stop()
