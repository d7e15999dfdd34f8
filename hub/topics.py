"""Topic names (design §3) and their creation."""

from __future__ import annotations

import re
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

_NAME_PART = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


def check_name_part(kind: str, value: str) -> str:
    if not _NAME_PART.match(value):
        raise ValueError(
            f"{kind} {value!r} must be lower-case letters, digits, '_' or '-' "
            "(it becomes part of a Kafka topic name)"
        )
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """All topic names of one hub installation, with its optional prefix."""

    prefix: str = ""

    def source(self, department: str, resource: str) -> str:
        return f"{self.prefix}govhub.src.{department}.{resource}"

    @property
    def source_pattern(self) -> str:
        """Regex subscription for every source topic (librdkafka: leading ``^``)."""
        return "^" + re.escape(f"{self.prefix}govhub.src.") + r".*"

    def parse_source(self, topic: str) -> tuple[str, str]:
        """(department, resource) of a source topic name."""
        head = f"{self.prefix}govhub.src."
        if not topic.startswith(head):
            raise ValueError(f"{topic!r} is not a source topic")
        department, _, resource = topic[len(head) :].partition(".")
        return department, resource

    def dlq(self, department: str) -> str:
        return f"{self.prefix}govhub.dlq.{department}"

    @property
    def delivery(self) -> str:
        return f"{self.prefix}govhub.dlv"

    @property
    def schemas(self) -> str:
        return f"{self.prefix}_govhub.schemas"

    @property
    def catalogue(self) -> str:
        return f"{self.prefix}_govhub.catalog"

    @property
    def parties(self) -> str:
        return f"{self.prefix}_govhub.parties"

    @property
    def subscriptions(self) -> str:
        return f"{self.prefix}_govhub.subscriptions"

    @property
    def keys(self) -> str:
        return f"{self.prefix}_govhub.keys"

    @property
    def audit(self) -> str:
        return f"{self.prefix}_govhub.audit"

    @property
    def audit_chain(self) -> str:
        """The audit notary's hash chain and signed checkpoints (``docs/audit.md``)."""
        return f"{self.prefix}_govhub.audit-chain"

    @property
    def connect_offsets(self) -> str:
        return f"{self.prefix}_govhub.connect-offsets"

    @property
    def control(self) -> tuple[str, ...]:
        return (
            self.schemas,
            self.catalogue,
            self.parties,
            self.subscriptions,
            self.keys,
            self.connect_offsets,
        )


def ensure_topics(
    admin: AdminClient,
    specs: dict[str, tuple[int, dict[str, str]]],
    replication_factor: int = -1,
    timeout: float = 30.0,
) -> None:
    """Create the topics that do not exist yet: ``{name: (partitions, config)}``."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(
            name, num_partitions=partitions, replication_factor=replication_factor, config=config
        )
        for name, (partitions, config) in specs.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


def ensure_hub_topics(
    admin: AdminClient, topics: Topics, delivery_partitions: int, replication_factor: int = -1
) -> None:
    specs: dict[str, tuple[int, dict[str, str]]] = {t: (1, COMPACTED) for t in topics.control}
    specs[topics.delivery] = (delivery_partitions, {})
    specs[topics.audit] = (3, {"retention.ms": "-1"})
    specs[topics.audit_chain] = (3, {"retention.ms": "-1"})
    ensure_topics(admin, specs, replication_factor)


def ensure_resource_topics(
    admin: AdminClient,
    topics: Topics,
    department: str,
    resource: str,
    partitions: int = 3,
    replication_factor: int = -1,
) -> None:
    """A resource's source topic and its department's dead-letter topic."""
    check_name_part("department", department)
    check_name_part("resource", resource)
    ensure_topics(
        admin,
        {
            topics.source(department, resource): (partitions, {}),
            topics.dlq(department): (1, {"retention.ms": str(30 * 86_400_000)}),
        },
        replication_factor,
    )
