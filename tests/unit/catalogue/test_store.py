"""Catalogue writes on a stand-in control state: ownership, conflicts, deprecation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from hub.catalogue.model import Resource, ResourceStatus
from hub.catalogue.samples import load_sample
from hub.catalogue.store import (
    CatalogueStore,
    Conflict,
    Forbidden,
    InvalidEntry,
    NotFound,
    Unavailable,
)
from hub.parties.model import Party, PartyKind
from hub.registry.schemas import SchemaError, canonical, schema_id_for

DIBAO = load_sample("mzj.dibao")


class Registry:
    def __init__(self) -> None:
        self.subjects: dict[str, list[int]] = {}

    def register(self, subject: str, schema: str) -> int:
        schema_id = schema_id_for(canonical(schema))
        self.subjects.setdefault(subject, []).append(schema_id)
        return schema_id


@dataclass
class State:
    rows: dict[str, Resource] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)
    generation: int = 0
    parties: dict[str, Party] = field(
        default_factory=lambda: {
            p: Party(id=p, name=p, kind=PartyKind.DEPARTMENT, region_code="110105000000")
            for p in ("mzj", "rsj")
        }
    )

    def resource(self, code: str) -> Resource | None:
        return self.rows.get(code)

    def resources(self) -> dict[str, Resource]:
        return dict(self.rows)

    def party(self, party_id: str) -> Party | None:
        return self.parties.get(party_id)

    def put_resource(self, resource: Resource) -> None:
        self.rows[resource.code] = resource
        self.generation += 1


@dataclass(frozen=True)
class Dept:
    id: str
    admin: bool = False

    def may_manage(self, department: str) -> bool:
        return self.admin or department == self.id


def make_store() -> tuple[CatalogueStore, State, list[tuple[str, str]]]:
    state = State()
    topics: list[tuple[str, str]] = []
    store = CatalogueStore(state, lambda dept, code: topics.append((dept, code)))  # type: ignore[arg-type]
    return store, state, topics


def entry(**changes: Any) -> dict[str, Any]:
    return {**DIBAO.resource.model_dump(mode="json"), **changes}


def test_register_creates_schema_topics_and_entry_once() -> None:
    store, state, topics = make_store()
    done = store.register(entry(), DIBAO.schema_json, Dept("mzj"))
    assert done.created and done.resource.registered_by == "mzj"
    assert state.registry.subjects == {DIBAO.resource.subject: [done.schema_id]}
    assert topics == [("mzj", "dibao")]
    again = store.register(entry(), DIBAO.schema_json, Dept("mzj"))
    assert not again.created and again.resource == done.resource  # unchanged: not rewritten
    changed = store.register(entry(summary="新摘要"), DIBAO.schema_json, Dept("mzj"))
    assert not changed.created and state.rows["dibao"].summary == "新摘要"


def test_hub_managed_keys_are_ignored() -> None:
    store, _, _ = make_store()
    forged = entry(status="deprecated", registered_by="someone-else")
    done = store.register(forged, DIBAO.schema_json, Dept("mzj"))
    assert done.resource.status is ResourceStatus.ACTIVE and done.resource.registered_by == "mzj"


def test_only_the_owner_or_a_system_admin_registers() -> None:
    store, _, _ = make_store()
    with pytest.raises(Forbidden, match="rsj may not register resources of department mzj"):
        store.register(entry(), DIBAO.schema_json, Dept("rsj"))
    assert store.register(entry(), DIBAO.schema_json, Dept("root", admin=True)).created
    with pytest.raises(Conflict, match="belongs to department mzj"):
        store.register(entry(department="rsj"), DIBAO.schema_json, Dept("rsj"))
    with pytest.raises(InvalidEntry, match="'gaj' is not a registered party"):
        store.register(entry(code="hj", department="gaj"), DIBAO.schema_json, Dept("gaj"))


def test_invalid_entries_and_schemas() -> None:
    store, _, _ = make_store()
    with pytest.raises(InvalidEntry) as info:
        store.register(entry(share_conditions=""), DIBAO.schema_json, Dept("mzj"))
    assert info.value.status == 422 and "share_conditions" in str(info.value)
    with pytest.raises(InvalidEntry, match="schema"):
        store.register(entry(), '{"type": "record", "name": "X", "fields": []}', Dept("mzj"))


def test_registry_and_kafka_failures_are_not_server_errors() -> None:
    store, state, _ = make_store()

    def refuse(subject: str, schema: str) -> int:
        raise ValueError("incompatible with version 1 (BACKWARD)")

    state.registry.register = refuse  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="BACKWARD"):
        store.register(entry(), DIBAO.schema_json, Dept("mzj"))

    def broken(subject: str, schema: str) -> int:
        raise SchemaError("collides")

    state.registry.register = broken  # type: ignore[method-assign]
    with pytest.raises(InvalidEntry):
        store.register(entry(), DIBAO.schema_json, Dept("mzj"))

    def down(dept: str, code: str) -> None:
        raise RuntimeError("cannot create topic")

    failing = CatalogueStore(State(), down)  # type: ignore[arg-type]
    with pytest.raises(Unavailable, match="cannot create the topics"):
        failing.register(entry(), DIBAO.schema_json, Dept("mzj"))


def test_deprecate() -> None:
    store, _, _ = make_store()
    store.register(entry(), DIBAO.schema_json, Dept("mzj"))
    with pytest.raises(NotFound):
        store.deprecate("nope", "x", Dept("mzj"))
    with pytest.raises(Forbidden):
        store.deprecate("dibao", "x", Dept("rsj"))
    with pytest.raises(InvalidEntry):
        store.deprecate("dibao", "   ", Dept("mzj"))
    done = store.deprecate("dibao", " 并入社会救助目录 ", Dept("mzj"))
    assert done.status is ResourceStatus.DEPRECATED and done.deprecation is not None
    assert done.deprecation.reason == "并入社会救助目录" and done.deprecation.by == "mzj"
    assert store.index().get("dibao") == done
    with pytest.raises(Conflict, match="already deprecated"):
        store.deprecate("dibao", "again", Dept("mzj"))
    with pytest.raises(Conflict, match="deprecated; register it under a new code"):
        store.register(entry(), DIBAO.schema_json, Dept("mzj"))
