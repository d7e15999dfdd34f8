"""Shared test configuration: broker fixtures come from ``tests.kafka_fixtures``."""

pytest_plugins = ["tests.kafka_fixtures", "tests.pg_fixtures"]
