"""The registry's write protocol on an in-memory log: versions, deletes, config, races."""

from __future__ import annotations

import random
import threading

import orjson
import pytest

from hub.registry.compatibility import Compatibility
from hub.registry.errors import (
    IncompatibleSchema,
    InvalidVersion,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from hub.registry.store import SchemaRegistry, parse_version
from tests.unit.registry.memlog import MemoryLog, Replica, loaded


def schema(*fields: str, name: str = "R") -> str:
    spec = [{"name": f, "type": "string", "default": ""} for f in fields]
    return orjson.dumps({"type": "record", "name": name, "fields": spec}).decode()


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def registry(log: MemoryLog) -> SchemaRegistry:
    return SchemaRegistry(Replica(log))


def test_register_is_idempotent_and_versions_are_dense(registry: SchemaRegistry) -> None:
    first = registry.register_version("s", schema("a"))
    again = registry.register_version("s", schema("a"))
    second = registry.register_version("s", schema("a", "b"))
    assert (first.version, first.created) == (1, True)
    assert (again.version, again.schema_id, again.created) == (1, first.schema_id, False)
    assert second.version == 2
    assert registry.version_numbers("s") == [1, 2]
    assert registry.version("s", "latest").schema_id == second.schema_id
    assert registry.lookup("s", schema("a")).version == 1
    assert registry.codec(first.schema_id) is registry.codec(first.schema_id)
    assert registry.usages(first.schema_id) == [("s", 1)]
    other = registry.register_version("t", schema("a"))
    assert other.schema_id == first.schema_id and other.version == 1


def test_lookups_name_what_is_missing(registry: SchemaRegistry) -> None:
    registry.register("s", schema("a"))
    with pytest.raises(SubjectNotFound):
        registry.version("nope", 1)
    with pytest.raises(VersionNotFound):
        registry.version("s", 7)
    with pytest.raises(SchemaNotFound):
        registry.lookup("s", schema("zzz"))
    with pytest.raises(SchemaNotFound):
        registry.schema(12345)
    with pytest.raises(KeyError):  # what callers of the earlier store catch
        registry.version("nope", "latest")


@pytest.mark.parametrize("spec", ["0", "abc", "1.5", "99999999999", " 1", "-2"])
def test_invalid_versions(spec: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_version(spec)
    assert parse_version("latest") is None and parse_version("-1") is None
    assert parse_version("12") == 12


def test_incompatible_schema_is_refused_and_config_changes_that(registry: SchemaRegistry) -> None:
    registry.register("s", schema("a"))
    required = orjson.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "b", "type": "int"}]}
    ).decode()
    with pytest.raises(IncompatibleSchema) as info:
        registry.register("s", required)
    assert info.value.messages and "details" in info.value.message
    assert registry.check_compatibility("s", required) == info.value.messages
    assert registry.check_compatibility("s", schema("a", "b"), "1") == []
    with pytest.raises(SubjectConfigNotFound):
        registry.get_config("s")
    assert registry.get_config("s", default_to_global=True) is Compatibility.BACKWARD
    registry.set_config("s", Compatibility.NONE)
    assert registry.register_version("s", required).version == 2
    assert registry.delete_config("s") is Compatibility.NONE
    registry.set_config(None, Compatibility.FULL)
    assert registry.effective_level("s") is Compatibility.FULL


def test_soft_then_permanent_deletion(registry: SchemaRegistry, log: MemoryLog) -> None:
    registry.register("s", schema("a"))
    registry.register("s", schema("a", "b"))
    with pytest.raises(VersionNotSoftDeleted):
        registry.delete_version("s", 1, permanent=True)
    assert registry.delete_version("s", "1") == 1
    with pytest.raises(VersionSoftDeleted):
        registry.delete_version("s", 1)
    assert registry.version_numbers("s") == [2]
    assert registry.version_numbers("s", deleted=True) == [1, 2]
    with pytest.raises(SubjectNotSoftDeleted):
        registry.delete_subject("s", permanent=True)
    assert registry.delete_subject("s") == [2]
    with pytest.raises(SubjectSoftDeleted):
        registry.delete_subject("s")
    assert registry.subjects() == [] and registry.subjects(deleted=True) == ["s"]
    assert registry.delete_subject("s", permanent=True) == [1, 2]
    with pytest.raises(SubjectNotFound):
        registry.delete_subject("s")
    # Version numbers are never reused; the schema stays readable by id for old data.
    again = registry.register_version("s", schema("a"))
    assert again.version == 3
    assert registry.schema(again.schema_id)
    assert SchemaRegistry(loaded(log.compacted())).version_numbers("s", deleted=True) == [3]


def test_a_registry_built_on_a_loaded_table_sees_its_rows(log: MemoryLog) -> None:
    SchemaRegistry(Replica(log)).register("s", schema("a"))
    assert SchemaRegistry(loaded(log)).version_numbers("s") == [1]


def test_concurrent_replicas_agree_on_dense_versions(log: MemoryLog) -> None:
    """Two replicas, several threads each, racing on one subject with distinct and with
    identical schemas: every schema gets exactly one version, versions are 1..N, and both
    replicas and a replica rebuilt from the compacted log agree."""
    tables = [Replica(log), Replica(log)]
    replicas = [SchemaRegistry(t) for t in tables]
    for registry in replicas:
        registry.set_config("s", Compatibility.NONE)
    fields = [f"f{i}" for i in range(24)]
    results: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []

    def hammer(registry: SchemaRegistry, seed: int) -> None:
        rng = random.Random(seed)
        for name in rng.sample(fields, len(fields)):  # every thread registers every schema
            try:
                done = registry.register_version("s", schema(name))
                results.append((name, done.version, done.schema_id))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(replicas[n % 2], n)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for t in tables:
        t.catch_up()
    by_name: dict[str, set[int]] = {}
    for name, version, _ in results:
        by_name.setdefault(name, set()).add(version)
    assert all(len(v) == 1 for v in by_name.values()), {
        k: v for k, v in by_name.items() if len(v) > 1
    }
    views = [[(sv.version, sv.schema_id) for sv in r.versions("s")] for r in replicas]
    rebuilt = SchemaRegistry(loaded(log.compacted()))
    views.append([(sv.version, sv.schema_id) for sv in rebuilt.versions("s")])
    assert views[0] == views[1] == views[2]
    assert [v for v, _ in views[0]] == list(range(1, len(fields) + 1))
