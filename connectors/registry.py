"""Connector types by name: built-ins, plus third-party ones from an entry-point group.

A connector type is registered with its typed config model and a factory::

    registry.register("file", "source", FileSourceConfig, FileSource.from_config)

Third-party packages expose ``register(registry)`` functions in the ``govhub.connectors``
entry-point group. Tests build an empty registry instead of touching a global one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "govhub.connectors"
Kind = Literal["source", "sink"]


class UnknownConnector(LookupError):
    pass


@dataclass(frozen=True)
class ConnectorType:
    name: str
    kind: Kind
    config_model: type[BaseModel]
    factory: Callable[[str, Any], Any]  # (connector name, validated config) -> Source | Sink
    summary: str = ""


class ConnectorRegistry:
    def __init__(self) -> None:
        self._types: dict[str, ConnectorType] = {}

    def register(
        self,
        name: str,
        kind: Kind,
        config_model: type[BaseModel],
        factory: Callable[[str, Any], Any],
        summary: str = "",
    ) -> None:
        if name in self._types:
            raise ValueError(f"connector type {name!r} is already registered")
        self._types[name] = ConnectorType(name, kind, config_model, factory, summary)

    def get(self, name: str) -> ConnectorType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types)) or "none"
            raise UnknownConnector(f"unknown connector type {name!r} (known: {known})") from None

    def types(self) -> list[ConnectorType]:
        return [self._types[name] for name in sorted(self._types)]

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for entry in entry_points(group=group):
            try:
                entry.load()(self)
            except Exception:
                log.exception("connector plugin %s failed to register", entry.name)


def default_registry() -> ConnectorRegistry:
    """The built-in connector types plus installed plugins."""
    from connectors import builtin

    registry = ConnectorRegistry()
    builtin.register(registry)
    registry.load_entry_points()
    return registry
