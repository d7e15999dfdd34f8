"""The PostgreSQL source type (needs the ``postgres`` extra: asyncpg).

Registering does not import asyncpg; building a source without it fails with the install
command.
"""

from __future__ import annotations

from connectors.registry import ConnectorRegistry
from connectors.sources.postgres import PostgresSource, PostgresSourceConfig


def register(registry: ConnectorRegistry) -> None:
    registry.register(
        "postgres",
        "source",
        PostgresSourceConfig,
        PostgresSource.from_config,
        "a PostgreSQL table: snapshot, then changes by cursor column + primary key",
    )
