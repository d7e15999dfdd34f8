"""The materialiser's rules, and that a compacted log gives the same state as the full one."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.registry.identity import identify
from hub.registry.index import RegistryIndex
from hub.registry.records import claim_key, config_key, deleted_key, erased_key, schema_key
from tests.unit.registry.memlog import MemoryLog

S1 = identify('{"type":"record","name":"A","fields":[]}')
S2 = identify('{"type":"record","name":"B","fields":[]}')


def schema_record(identity: Any) -> tuple[str, dict[str, Any]]:
    return schema_key(identity.schema_id), {"id": identity.schema_id, "schema": identity.form}


def claim(subject: str, version: int, writer: str, schema_id: int) -> tuple[str, dict[str, Any]]:
    value = {"subject": subject, "version": version, "id": schema_id, "writer": writer}
    return claim_key(subject, version, writer), value


def build(records: list[tuple[str, dict[str, Any] | None]]) -> RegistryIndex:
    index = RegistryIndex()
    for key, value in records:
        index.apply(key, value)
    return index


def snapshot(index: RegistryIndex) -> dict[str, Any]:
    subjects = index.subjects(deleted=True)
    return {
        "subjects": subjects,
        "live": index.subjects(),
        "versions": {
            s: [index.version(s, v, True) for v in index.versions(s, True)] for s in subjects
        },
        "next": {s: index.next_version(s) for s in subjects},
        "config": {s: index.config(s) for s in subjects},
        "global": index.config(None),
    }


def test_first_live_claim_holds_the_slot() -> None:
    index = build(
        [
            schema_record(S1),
            schema_record(S2),
            claim("s", 1, "w1", S1.schema_id),
            claim("s", 1, "w2", S2.schema_id),
        ]
    )
    assert index.winner("s", 1) == ("w1", S1.schema_id)
    assert index.next_version("s") == 2
    index.apply(claim_key("s", 1, "w2"), None)  # the loser cleans up: nothing changes
    assert index.winner("s", 1) == ("w1", S1.schema_id)
    sv = index.latest("s")
    assert sv is not None and (sv.version, sv.schema_id, sv.schema) == (1, S1.schema_id, S1.form)


def test_an_erased_slot_stays_retired_and_its_number_is_not_reused() -> None:
    key, value = erased_key("s", 1), {"subject": "s", "version": 1}
    index = build(
        [
            schema_record(S1),
            claim("s", 1, "w1", S1.schema_id),
            (key, value),
            claim("s", 1, "late", S1.schema_id),
        ]
    )
    assert index.versions("s", deleted=True) == ()
    assert index.next_version("s") == 2


def test_soft_deleted_versions_leave_listings_but_stay_readable() -> None:
    marker = deleted_key("s", 1), {"subject": "s", "version": 1}
    index = build(
        [
            schema_record(S1),
            schema_record(S2),
            claim("s", 1, "a", S1.schema_id),
            claim("s", 2, "b", S2.schema_id),
            marker,
        ]
    )
    assert index.versions("s") == (2,)
    assert index.versions("s", deleted=True) == (1, 2)
    assert index.version("s", 1) is None
    deleted = index.version("s", 1, deleted=True)
    assert deleted is not None and deleted.deleted
    assert index.find("s", S1.schema_id) is None and index.find("s", S1.schema_id, True) == 1
    assert index.usages(S1.schema_id) == [] and index.usages(S1.schema_id, True) == [("s", 1)]


def test_schema_records_must_hash_to_their_id_and_the_first_schema_keeps_it() -> None:
    forged = schema_key(S1.schema_id), {"id": S1.schema_id, "schema": S2.form}
    index = build([forged])
    assert index.schema(S1.schema_id) is None
    index = build([schema_record(S1)])
    assert index.schema(S1.schema_id) == S1.form


def test_malformed_and_unknown_records_are_ignored() -> None:
    index = build(
        [
            ("subject/old/1", {"id": 1}),
            (claim_key("s", 1, "w"), {"subject": "other", "version": 1, "id": 5}),
            (claim_key("s", 2, "w"), {"nonsense": True}),
            (config_key("s"), {"compatibility": "SOMETIMES"}),
            ("claim/s/x/w", {"subject": "s"}),
        ]
    )
    assert index.subjects(deleted=True) == []
    assert index.config("s") is None


# -- compaction ------------------------------------------------------------------------------
SUBJECTS = ["s", "t/with/slash"]
ids = st.sampled_from([S1.schema_id, S2.schema_id])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("claim"), st.sampled_from(SUBJECTS), st.integers(1, 3), ids),
        st.tuples(st.just("drop"), st.integers(0, 40)),  # tombstone an earlier claim
        st.tuples(st.just("delete"), st.sampled_from(SUBJECTS), st.integers(1, 3)),
        st.tuples(st.just("erase"), st.sampled_from(SUBJECTS), st.integers(1, 3)),
        st.tuples(
            st.just("config"), st.sampled_from([None, *SUBJECTS]), st.sampled_from(["FULL", None])
        ),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_a_compacted_log_materialises_to_the_same_state(ops: list[tuple[Any, ...]]) -> None:
    log = MemoryLog([schema_record(S1), schema_record(S2)])
    claims: list[str] = []
    for n, op in enumerate(ops):
        if op[0] == "claim":
            key, value = claim(op[1], op[2], f"w{n}", op[3])
            claims.append(key)
            log.append(key, value)
        elif op[0] == "drop" and claims:
            log.append(claims[op[1] % len(claims)], None)
        elif op[0] in ("delete", "erase"):
            make = deleted_key if op[0] == "delete" else erased_key
            log.append(make(op[1], op[2]), {"subject": op[1], "version": op[2], "writer": f"w{n}"})
        elif op[0] == "config":
            log.append(config_key(op[1]), {"subject": op[1], "compatibility": op[2]})
    full = build(log.records)
    compacted = build(log.compacted().records)
    assert snapshot(full) == snapshot(compacted)
