"""The subscriber-side sink types (run by the SDK, not by ``govhub connector run``).

Sink type names end in ``-sink``: the registry has one namespace for sources and sinks.
"""

from __future__ import annotations

from connectors.registry import ConnectorRegistry
from connectors.sinks.csv import CsvSink, CsvSinkConfig
from connectors.sinks.jsonl import JsonlSink, JsonlSinkConfig
from connectors.sinks.postgres import PostgresSink, PostgresSinkConfig
from connectors.sinks.webhook import WebhookSink, WebhookSinkConfig


def register(registry: ConnectorRegistry) -> None:
    registry.register(
        "jsonl-sink",
        "sink",
        JsonlSinkConfig,
        JsonlSink.from_config,
        "JSON-lines file, exactly once",
    )
    registry.register(
        "csv-sink",
        "sink",
        CsvSinkConfig,
        CsvSink.from_config,
        "CSV file (UTF-8 or GBK, Excel-safe option), exactly once",
    )
    registry.register(
        "postgres-sink",
        "sink",
        PostgresSinkConfig,
        PostgresSink.from_config,
        "upsert into a PostgreSQL table, cursor in the same transaction (exactly once)",
    )
    registry.register(
        "webhook-sink",
        "sink",
        WebhookSinkConfig,
        WebhookSink.from_config,
        "HTTP POST per batch with retries, backoff and a dead-letter folder",
    )
