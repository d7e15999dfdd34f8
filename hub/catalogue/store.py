"""Catalogue writes and reads over the control state: register, deprecate, look up, search.

Blocking (Kafka round trips): the api calls these methods in a worker thread. Every
refusal is a :class:`CatalogueError` whose ``status`` is the HTTP status to answer with.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hub.catalogue.binding import CatalogueValidationError, bind_schema
from hub.catalogue.model import Deprecation, Resource, ResourceStatus
from hub.catalogue.search import CatalogueIndex
from hub.controlstate import ControlStateError
from hub.parties.model import PartyKind
from hub.registry.schemas import SchemaError
from hub.state import ControlState

# Set by the hub when it writes an entry; whatever a caller sends for them is ignored.
HUB_MANAGED = ("status", "deprecation", "registered_at", "registered_by")

TopicProvisioner = Callable[[str, str], None]
"""Creates the source and dead-letter topics of ``(department, resource code)``."""


class CatalogueError(Exception):
    status = 400

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class InvalidEntry(CatalogueError):
    status = 422


class Forbidden(CatalogueError):
    status = 403


class NotFound(CatalogueError):
    status = 404


class Conflict(CatalogueError):
    status = 409


class Unavailable(CatalogueError):
    status = 503


class Actor(Protocol):
    """The party making a change."""

    @property
    def id(self) -> str: ...

    def may_manage(self, department: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Registration:
    resource: Resource
    schema_id: int
    created: bool


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


class CatalogueStore:
    def __init__(self, state: ControlState, provision_topics: TopicProvisioner) -> None:
        self._state = state
        self._provision_topics = provision_topics
        self._index: CatalogueIndex | None = None
        self._index_generation = -1
        self._lock = threading.Lock()

    # -- reads -----------------------------------------------------------------------------
    def get(self, code: str) -> Resource:
        resource = self._state.resource(code)
        if resource is None:
            raise NotFound(f"resource {code!r} is not in the catalogue")
        return resource

    def index(self) -> CatalogueIndex:
        """The search index of the current catalogue, rebuilt only after a change."""
        generation = self._state.generation
        with self._lock:
            if self._index is not None and self._index_generation == generation:
                return self._index
        index = CatalogueIndex(self._state.resources().values())
        with self._lock:
            self._index, self._index_generation = index, generation
        return index

    def schema_version(self, resource: Resource) -> tuple[int, int] | None:
        """(schema id, version) of the latest schema under the resource's subject."""
        try:
            latest = self._state.registry.version(resource.subject, "latest")
        except Exception:  # no live version (deleted, not yet read): show the entry anyway
            return None
        return latest.schema_id, latest.version

    # -- writes ----------------------------------------------------------------------------
    def register(self, entry: Mapping[str, Any], schema_json: str, actor: Actor) -> Registration:
        """Register (or update) a resource: schema, topics, then the catalogue entry.

        The schema comes first so that whoever finds the entry also finds its schema.
        """
        department = entry.get("department")
        if isinstance(department, str) and not actor.may_manage(department):
            raise Forbidden(
                f"party {actor.id} may not register resources of department {department}"
            )
        raw = {k: v for k, v in entry.items() if k not in HUB_MANAGED}
        try:
            resource = bind_schema(raw, schema_json)
        except CatalogueValidationError as exc:
            raise InvalidEntry(f"invalid catalogue entry: {exc}", exc.problems) from None
        owner = self._state.party(resource.department)
        if owner is None or owner.kind is not PartyKind.DEPARTMENT:
            raise InvalidEntry(f"department {resource.department!r} is not a registered party")
        existing = self._state.resource(resource.code)
        if existing is not None and existing.department != resource.department:
            raise Conflict(
                f"resource code {resource.code!r} belongs to department {existing.department}"
            )
        if existing is not None and existing.status is ResourceStatus.DEPRECATED:
            raise Conflict(
                f"resource {resource.code!r} is deprecated; register it under a new code"
            )
        schema_id = self._register_schema(resource, schema_json)
        try:
            self._provision_topics(resource.department, resource.code)
        except Exception as exc:  # admin client errors come in several types
            raise Unavailable(f"cannot create the topics of {resource.code}: {exc}") from None
        if existing is not None and _same_entry(existing, resource):
            return Registration(existing, schema_id, created=False)
        stamped = resource.model_copy(update={"registered_at": _now(), "registered_by": actor.id})
        self._put(stamped)
        return Registration(stamped, schema_id, created=existing is None)

    def deprecate(self, code: str, reason: str, actor: Actor) -> Resource:
        """Mark a resource deprecated: no new subscriptions; existing ones keep flowing."""
        resource = self.get(code)
        if not actor.may_manage(resource.department):
            raise Forbidden(
                f"party {actor.id} may not deprecate {code}, a resource of {resource.department}"
            )
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise InvalidEntry("a deprecation needs a reason of 1 to 500 characters")
        if resource.status is ResourceStatus.DEPRECATED:
            raise Conflict(f"resource {code!r} is already deprecated")
        deprecated = resource.model_copy(
            update={
                "status": ResourceStatus.DEPRECATED,
                "deprecation": Deprecation(reason=reason, at=_now(), by=actor.id),
            }
        )
        self._put(deprecated)
        return deprecated

    def _register_schema(self, resource: Resource, schema_json: str) -> int:
        try:
            return self._state.registry.register(resource.subject, schema_json)
        except SchemaError as exc:
            raise InvalidEntry(f"schema: {exc}") from None
        except ControlStateError as exc:
            raise Unavailable(f"schema registry unavailable: {exc}") from None
        except Exception as exc:  # registry errors carry the HTTP status they stand for
            status = getattr(exc, "status", None)
            refused = f"schema registry refused the schema: {exc}"
            if status == 409 or isinstance(exc, ValueError | LookupError):
                raise Conflict(refused) from None  # e.g. an incompatible evolution
            if isinstance(status, int) and 400 <= status < 500:
                raise InvalidEntry(refused) from None
            raise Unavailable(f"schema registry unavailable: {exc}") from None

    def _put(self, resource: Resource) -> None:
        try:
            self._state.put_resource(resource)
        except ControlStateError as exc:
            raise Unavailable(f"catalogue write failed: {exc}") from None
        with self._lock:
            self._index = None  # read-your-writes before the change listener has run


def _same_entry(a: Resource, b: Resource) -> bool:
    ignore = {"registered_at", "registered_by"}
    return a.model_dump(exclude=ignore) == b.model_dump(exclude=ignore)
