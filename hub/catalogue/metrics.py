"""Catalogue and data-quality metrics (design §10).

The resource gauge is kept from the raw catalogue rows as they are read from
``_govhub.catalog``, so it costs nothing per request and stays right on every api replica.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter, Gauge

CATALOG_RESOURCES = Gauge(
    "govhub_catalog_resources",
    "Catalogue resources by status and classification",
    ["status", "classification"],
)
CATALOG_REGISTRATIONS = Counter(
    "govhub_catalog_registrations_total",
    "Resource registrations through the api, by outcome",
    ["outcome"],
)
CATALOG_DEPRECATIONS = Counter(
    "govhub_catalog_deprecations_total", "Resources deprecated through the api"
)
QUALITY_VIOLATIONS = Counter(
    "govhub_quality_violations_total",
    "Records refused by a data-quality rule where they enter the hub",
    ["resource", "rule"],
)


class ResourceGauge:
    """Feeds :data:`CATALOG_RESOURCES` from catalogue table changes (a table listener)."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, str] | None] = {}
        self._counts: Tally[tuple[str, str]] = Tally()
        self._lock = threading.Lock()

    def seed(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Rows read before the listener was attached; changes seen since win over them."""
        with self._lock:
            for key, value in rows:
                if key not in self._rows:
                    self._apply(key, _labels(value))

    def observe(self, key: str, value: dict[str, Any] | None) -> None:
        with self._lock:
            self._apply(key, None if value is None else _labels(value))

    def _apply(self, key: str, labels: tuple[str, str] | None) -> None:
        old = self._rows.get(key)
        self._rows[key] = labels
        for changed, step in ((old, -1), (labels, 1)):
            if changed is not None:
                self._counts[changed] += step
                CATALOG_RESOURCES.labels(*changed).set(self._counts[changed])


def _labels(row: dict[str, Any]) -> tuple[str, str]:
    return str(row.get("status", "active")), str(row.get("classification", "general"))
