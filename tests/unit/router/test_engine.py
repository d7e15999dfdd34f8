"""The exchange step on plain data: routing, masking, framing, dead letters."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.catalogue.samples import load_sample
from hub.crypto.frames import open_frame
from hub.crypto.keys import unwrap_data_key
from hub.crypto.kms import LocalFileKms
from hub.parties.model import Party, PartyKind
from hub.policy import splice
from hub.registry.framing import frame
from hub.registry.schemas import AvroCodec, canonical, schema_id_for
from hub.registry.store import SchemaNotFound
from hub.router.engine import ExchangeEngine, OutRecord
from hub.router.keys import KeyBook
from hub.router.routing import RoutingTable, compile_routing_table
from hub.subscriptions.model import Subscription
from hub.topics import Topics

SAMPLE = load_sample("mzj.dibao")
TOPICS = Topics("t.")
SOURCE = TOPICS.source("mzj", "dibao")


class Schemas:
    """An in-memory schema source with the registry's id rule."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.decodes = 0

    def register_schema(self, schema: str) -> int:
        sid = schema_id_for(canonical(schema))
        self.schemas[sid] = schema
        return sid

    def schema(self, schema_id: int) -> str:
        if schema_id not in self.schemas:
            raise SchemaNotFound(schema_id)
        return self.schemas[schema_id]

    def codec(self, schema_id: int) -> AvroCodec:
        return AvroCodec(self.schema(schema_id))


@dataclass
class Msg:
    _value: bytes | None
    _headers: list[tuple[str, bytes]]
    _offset: int
    _topic: str = SOURCE
    _partition: int = 0
    _key: bytes | None = field(default=None)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


PARTIES = {
    p.id: p
    for p in [
        Party(id="rsj", name="人社局", kind=PartyKind.DEPARTMENT, region_code="110105000000"),
        Party(id="street", name="建外街道", kind=PartyKind.UNIT, region_code="110105001000"),
        Party(id="comm", name="永安里社区", kind=PartyKind.UNIT, region_code="110105001001"),
    ]
}
SUBS = [
    Subscription(
        id=f"s-{p}",
        resource="dibao",
        subscriber=p,
        jurisdiction=PARTIES[p].region_code,
        purpose="t",
    )
    for p in PARTIES
]


def record(i: int, region: str) -> dict[str, object]:
    return {
        "id_card": "11010519491231002X",
        "name": f"张{i}",
        "region_code": region,
        "household_size": 1,
        "amount": "100.00",
        "approved_on": "2026-01-01",
        "category": "URBAN",
        "address": "北京市朝阳区建外街道1号",
    }


@pytest.fixture(params=["native", "python"])
def world(
    tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[ExchangeEngine, Schemas, LocalFileKms, int]:
    schemas = Schemas()
    sid = schemas.register_schema(SAMPLE.schema_json)
    kms = LocalFileKms(tmp_path / "kek", create=True)
    table = compile_routing_table(SAMPLE.resource, SUBS, PARTIES)
    tables: dict[str, RoutingTable] = {"dibao": table}
    engine = ExchangeEngine(
        TOPICS,
        schemas,
        tables.get,
        lambda r: "t",
        KeyBook(kms, 3_600_000),
        delivery_partitions=4,
        max_frame_entries=3,
        native=request.param == "native",
    )
    return engine, schemas, kms, sid


def encode(schemas: Schemas, sid: int, rec: dict[str, object]) -> bytes:
    codec = schemas.codec(sid)
    return frame(sid, codec.encode(codec.from_json(rec)))


def headers(region: str, rid: str) -> list[tuple[str, bytes]]:
    return [
        ("govhub-region", region.encode()),
        ("govhub-record-id", rid.encode()),
        ("govhub-ingested-at", b"1700000000000"),
    ]


def open_all(
    out: list[OutRecord], engine_keys: dict[bytes, bytes], recipient: str, schemas: Schemas
) -> list[dict[str, object]]:
    rows = []
    for rec in out:
        if rec.key != recipient.encode():
            continue
        assert rec.value is not None
        _, entries = open_frame(rec.value, recipient, engine_keys.__getitem__)
        rows += [schemas.codec(e.schema_id).decode(e.payload) for e in entries]
    return rows


def test_each_recipient_gets_its_rows_in_frames(world) -> None:  # type: ignore[no-untyped-def]
    engine, schemas, kms, sid = world
    msgs = [
        Msg(
            encode(schemas, sid, record(i, "110105001001" if i % 2 else "110105002001")),
            headers("110105001001" if i % 2 else "110105002001", f"r{i}"),
            i,
        )
        for i in range(10)
    ]
    outcome = engine.process(msgs)
    assert outcome.dead_letters == []
    keys = {r.key_id: unwrap_data_key(kms, r) for r in engine._keybook.take_new_records()}
    rsj = open_all(outcome.frames, keys, "rsj", schemas)
    street = open_all(outcome.frames, keys, "street", schemas)
    comm = open_all(outcome.frames, keys, "comm", schemas)
    assert len(rsj) == 10 and len(street) == 5 and len(comm) == 5
    assert all(r["name"] == "张*" and "*" in str(r["id_card"]) for r in comm)
    assert all("*" not in str(r["name"]) for r in street)
    # max_frame_entries=3 splits the community's 5 entries into two frames.
    assert sum(1 for f in outcome.frames if f.key == b"comm") == 2
    stats = outcome.stats["dibao"]
    assert stats.records_in == 10 and sum(stats.deliveries.values()) == 20
    # Frames go to the recipient's delivery partition.
    from hub.delivery import delivery_partition

    assert {f.partition for f in outcome.frames if f.key == b"comm"} == {
        delivery_partition("comm", 4)
    }


def test_bad_records_become_dead_letters_with_reasons(world) -> None:  # type: ignore[no-untyped-def]
    engine, schemas, _, sid = world
    good = encode(schemas, sid, record(1, "110105001001"))
    msgs = [
        Msg(good, headers("11010500100X", "bad-region"), 1),
        Msg(good, [("govhub-record-id", b"x")], 2),
        Msg(b"\x00\x00\x00\x00\x07abc", headers("110105001001", "unknown-schema"), 3),
        Msg(b"junk", headers("110105001001", "bad-framing"), 4),
        Msg(good[:5] + b"\xff\xff\xff", headers("110105001001", "bad-avro"), 5),
        Msg(good, headers("110105001001", "fine"), 6),
        Msg(good, headers("110105001001", "x"), 7, _topic="t.govhub.src.mzj.unknown"),
    ]
    outcome = engine.process(msgs)
    reasons = [dict(d.headers)["govhub-dlq-reason"].decode() for d in outcome.dead_letters]
    assert reasons == [
        "invalid-region",
        "missing-region",
        "unknown-schema",
        "bad-framing",
        "bad-avro",
        "unknown-resource",
    ]
    assert {d.topic for d in outcome.dead_letters} == {TOPICS.dlq("mzj")}
    first = dict(outcome.dead_letters[0].headers)
    assert first["govhub-dlq-source-offset"] == b"1"
    assert outcome.dead_letters[0].value == good  # kept, not dropped
    assert len(outcome.frames) == 3  # the one good record reached rsj, street and comm


def test_identity_views_are_not_decoded(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine, schemas, _, sid = world
    calls = []
    original = AvroCodec.decode
    monkeypatch.setattr(AvroCodec, "decode", lambda self, p: calls.append(1) or original(self, p))
    msgs = [
        Msg(encode(schemas, sid, record(i, "110105001002")), headers("110105001002", f"{i}"), i)
        for i in range(5)
    ]
    outcome = engine.process(msgs)  # only rsj and street match: both unmasked
    assert {f.key for f in outcome.frames} == {b"rsj", b"street"} and calls == []
    msgs = [
        Msg(encode(schemas, sid, record(i, "110105001001")), headers("110105001001", f"{i}"), i)
        for i in range(5)
    ]
    engine.process(msgs)  # the community's masked view: spliced, or one decode per record
    assert len(calls) == (0 if splice.NATIVE_AVAILABLE else 5)


def test_keys_created_in_an_aborted_transaction_are_forgotten(tmp_path: Path) -> None:
    kms = LocalFileKms(tmp_path / "kek", create=True)
    book = KeyBook(kms, 3_600_000)
    first, _ = book.sealer_for("comm")
    assert [r.key_id for r in book.take_new_records()] == [first.key_id]
    book.abort()
    second, _ = book.sealer_for("comm")
    assert second.key_id != first.key_id
    assert [r.key_id for r in book.take_new_records()] == [second.key_id]
    book.commit()
    third, _ = book.sealer_for("comm")
    assert third.key_id == second.key_id and book.take_new_records() == []
    assert base64.b64encode(third.key_id)


def test_keys_of_the_next_transaction_survive_the_commit_of_the_previous(
    tmp_path: Path,
) -> None:
    """Transactions overlap: the next batch is shaped while the previous one commits."""
    kms = LocalFileKms(tmp_path / "kek", create=True)
    book = KeyBook(kms, 3_600_000)
    first, _ = book.sealer_for("a")
    assert [r.key_id for r in book.take_new_records()] == [first.key_id]  # txn 1 in flight
    second, _ = book.sealer_for("b")  # created for txn 2 while txn 1 commits
    book.commit()  # txn 1 committed
    assert [r.key_id for r in book.take_new_records()] == [second.key_id]
    book.abort()  # txn 2 failed: b's key is gone, a's (committed) stays
    assert book.sealer_for("a")[0].key_id == first.key_id
    assert book.sealer_for("b")[0].key_id != second.key_id


def test_abort_forgets_keys_in_flight_and_pending(tmp_path: Path) -> None:
    kms = LocalFileKms(tmp_path / "kek", create=True)
    book = KeyBook(kms, 3_600_000)
    first, _ = book.sealer_for("a")
    book.take_new_records()  # txn 1 in flight
    second, _ = book.sealer_for("b")  # pending for txn 2
    book.abort()  # txn 1 failed: txn 2's frames (maybe sealed under a's key) are dropped too
    assert book.sealer_for("a")[0].key_id != first.key_id
    assert book.sealer_for("b")[0].key_id != second.key_id


def test_rotation_retires_only_the_recipients_keys(tmp_path: Path) -> None:
    kms = LocalFileKms(tmp_path / "kek", create=True)
    book = KeyBook(kms, 3_600_000)
    a, _ = book.sealer_for("a")
    b, _ = book.sealer_for("b")
    book.take_new_records()
    book.commit()
    assert book.rotate("a") == 1
    assert book.sealer_for("a")[0].key_id != a.key_id
    assert book.sealer_for("b")[0].key_id == b.key_id
