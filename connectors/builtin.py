"""The connector types shipped with GovHub."""

from __future__ import annotations

from connectors.registry import ConnectorRegistry
from connectors.sources.file import JsonlFileConfig, JsonlFileSource


def register(registry: ConnectorRegistry) -> None:
    registry.register(
        "jsonl-file",
        "source",
        JsonlFileConfig,
        JsonlFileSource.from_config,
        "one JSON-lines file, resumed by line",
    )
