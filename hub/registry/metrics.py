"""Schema registry metrics (``govhub_registry_<thing>_<unit>``), on the default registry so
they appear on every role's ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

REGISTRATIONS = Counter(
    "govhub_registry_registrations_total",
    "Schema registrations under a subject by outcome "
    "(new-version, existing, incompatible, invalid, error)",
    ["outcome"],
)
COMPATIBILITY_CHECKS = Counter(
    "govhub_registry_compatibility_checks_total",
    "Compatibility decisions by result (compatible, incompatible)",
    ["result"],
)
CLAIMS_LOST = Counter(
    "govhub_registry_version_claims_lost_total",
    "Version claims that lost to a concurrent writer and were retried",
)
REGISTRATION_SECONDS = Histogram(
    "govhub_registry_registration_seconds",
    "Time to register a schema under a subject, Kafka round trips included",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SCHEMAS = Gauge("govhub_registry_schemas", "Distinct schemas known to the registry")
SUBJECTS = Gauge("govhub_registry_subjects", "Subjects with at least one live version")


def track_sizes(schemas: Callable[[], int], subjects: Callable[[], int]) -> None:
    """Report the sizes of a registry (the last one created in a process wins)."""
    SCHEMAS.set_function(schemas)
    SUBJECTS.set_function(subjects)
