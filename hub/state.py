"""The control state one role needs: every control table, loaded and kept current."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import ValidationError

from hub.catalogue.model import Resource
from hub.config import HubConfig
from hub.controlstate import CompactedTable
from hub.parties.model import Party
from hub.registry.store import SchemaRegistry
from hub.subscriptions.model import Subscription
from hub.topics import Topics

log = logging.getLogger(__name__)

M = TypeVar("M", Resource, Party, Subscription)


class ControlState:
    """Catalogue, parties, subscriptions, schemas and wrapped keys of one hub.

    ``generation`` increases with every change of the policy-relevant tables, so a router
    can tell cheaply that its compiled routing tables are stale.
    """

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.topics = Topics(config.kafka.topic_prefix)
        boot, extra = config.kafka.bootstrap_servers, config.kafka.client_config
        self.schemas = CompactedTable(boot, self.topics.schemas, client_config=extra)
        self.catalogue = CompactedTable(boot, self.topics.catalogue, client_config=extra)
        self.parties = CompactedTable(boot, self.topics.parties, client_config=extra)
        self.subscriptions = CompactedTable(boot, self.topics.subscriptions, client_config=extra)
        self.keys = CompactedTable(boot, self.topics.keys, client_config=extra)
        self.registry = SchemaRegistry(self.schemas)
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        for table in (self.catalogue, self.parties, self.subscriptions):
            table.add_listener(self._on_change)

    @property
    def tables(self) -> tuple[CompactedTable, ...]:
        return (self.schemas, self.catalogue, self.parties, self.subscriptions, self.keys)

    def start(self, timeout: float = 30.0) -> None:
        for table in self.tables:
            table.start(timeout)

    def stop(self) -> None:
        for table in self.tables:
            table.stop()

    def catch_up_policy(self, timeout: float = 5.0) -> bool:
        """Read every catalogue, party and subscription change written before this call."""
        return all(
            table.catch_up(timeout) for table in (self.catalogue, self.parties, self.subscriptions)
        )

    @property
    def generation(self) -> int:
        return self._generation

    def on_policy_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _on_change(self, key: str, value: dict[str, Any] | None) -> None:
        if key.startswith("_"):
            return  # bookkeeping rows (catch-up markers), not policy
        with self._gen_lock:
            self._generation += 1
        for callback in self._listeners:
            callback()

    # -- typed views ---------------------------------------------------------------------
    def resources(self) -> dict[str, Resource]:
        return _parse_all(self.catalogue.values(), Resource, "code")

    def resource(self, code: str) -> Resource | None:
        row = self.catalogue.get(code)
        return None if row is None else _parse(row, Resource)

    def party_map(self) -> dict[str, Party]:
        return _parse_all(self.parties.values(), Party, "id")

    def party(self, party_id: str) -> Party | None:
        row = self.parties.get(party_id)
        return None if row is None else _parse(row, Party)

    def subscription_list(self) -> list[Subscription]:
        return list(_parse_all(self.subscriptions.values(), Subscription, "id").values())

    def subscription(self, sub_id: str) -> Subscription | None:
        row = self.subscriptions.get(sub_id)
        return None if row is None else _parse(row, Subscription)

    # -- writes --------------------------------------------------------------------------
    def put_resource(self, resource: Resource) -> None:
        self.catalogue.put(resource.code, resource.model_dump(mode="json"))

    def put_party(self, party: Party) -> None:
        self.parties.put(party.id, party.model_dump(mode="json"))

    def put_subscription(self, subscription: Subscription) -> None:
        self.subscriptions.put(subscription.id, subscription.model_dump(mode="json"))

    def put_parties(self, parties: Iterable[Party]) -> None:
        """Bulk provisioning: one flush for all rows."""
        self.parties.put_many((p.id, p.model_dump(mode="json")) for p in parties)

    def put_subscriptions(self, subscriptions: Iterable[Subscription]) -> None:
        self.subscriptions.put_many((s.id, s.model_dump(mode="json")) for s in subscriptions)


def _parse(row: dict[str, Any], model: type[M]) -> M | None:
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        # A row written by a newer or broken writer must not stop the hub.
        log.error("ignoring invalid %s row: %s", model.__name__, exc)
        return None


def _parse_all(rows: list[dict[str, Any]], model: type[M], key: str) -> dict[str, M]:
    out: dict[str, M] = {}
    for row in rows:
        item = _parse(row, model)
        if item is not None:
            out[getattr(item, key)] = item
    return out
