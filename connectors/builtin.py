"""The connector types shipped with GovHub: one ``register(registry)`` for all of them."""

from __future__ import annotations

from connectors import builtin_postgres, builtin_sinks
from connectors.registry import ConnectorRegistry
from connectors.sources.file import JsonlFileConfig, JsonlFileSource
from connectors.sources.filedrop import FileDropConfig, FileDropSource
from connectors.sources.http import HttpSource, HttpSourceConfig


def register(registry: ConnectorRegistry) -> None:
    registry.register(
        "jsonl-file",
        "source",
        JsonlFileConfig,
        JsonlFileSource.from_config,
        "one JSON-lines file, resumed by line",
    )
    registry.register(
        "file",
        "source",
        FileDropConfig,
        FileDropSource.from_config,
        "drop folder of CSV (UTF-8/GBK), JSON-lines and XLSX files",
    )
    registry.register(
        "http",
        "source",
        HttpSourceConfig,
        HttpSource.from_config,
        "HTTP push endpoint: JSON arrays or NDJSON with a department token",
    )
    builtin_postgres.register(registry)  # the PostgreSQL source
    builtin_sinks.register(registry)  # subscriber-side sinks (run by the SDK)
