"""Kafka client construction shared by every role."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)


_librdkafka_log = logging.getLogger("librdkafka")


# Once a partition's prefetch queue is over its thresholds, librdkafka postpones the
# partition's next fetch by ``fetch.queue.backoff.ms``; its default, a second, leaves a
# consumer that drains the queue sooner idle for the rest of it. Consumers that read
# backlogs as fast as they can (the gateway's live tail and catch-up reads, the
# benchmarks' raw loop) pass this instead. Not a default for every consumer: a slow one
# gains nothing and would re-check its full queue every 5 ms.
FETCH_QUEUE_BACKOFF_MS = 5


def _base(bootstrap: str, extra: Mapping[str, str] | None, client_id: str) -> dict[str, Any]:
    # librdkafka's own log lines go through Python logging (structured, level-filtered).
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "logger": _librdkafka_log,
    }
    conf.update(extra or {})
    return conf


def _log_error(err: Any) -> None:
    # Transport errors are retried by the client; they matter only when they persist.
    log.info("kafka client error: %s", err)


def admin_client(bootstrap: str, extra: Mapping[str, str] | None = None) -> AdminClient:
    return AdminClient(_base(bootstrap, extra, "govhub-admin"))


def producer(
    bootstrap: str,
    client_id: str,
    extra: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Producer:
    """An idempotent ``acks=all`` producer; pass ``transactional_id`` for transactions."""
    conf = _base(bootstrap, extra, client_id)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "error_cb": _log_error,
        }
    )
    transactional_id = overrides.pop("transactional_id", None)
    if transactional_id:
        conf["transactional.id"] = transactional_id
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return Producer(conf)


def consumer(
    bootstrap: str,
    group_id: str,
    client_id: str,
    extra: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Consumer:
    """A ``read_committed`` consumer that never commits on its own."""
    conf = _base(bootstrap, extra, client_id)
    conf.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "error_cb": _log_error,
        }
    )
    conf.update({k.replace("_", "."): v for k, v in overrides.items()})
    return Consumer(conf)
