"""The grant book is rebuilt off the event loop and stays consistent; the audit writer
chunks every event exactly once, whichever thread wrote it."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any

import orjson
import pytest

from hub.catalogue.model import ShareMethod
from hub.catalogue.samples import load_sample
from hub.dataservice.access import AccessBook, AccessDenied
from hub.dataservice.audit import CHUNK_KIND, AuditWriter, keys_digest
from hub.demo.world import build_members
from hub.subscriptions.model import Subscription, SubscriptionStatus


class ControlTables:
    """What the book reads from the control state, as plain data; records the threads
    that rebuilt from it."""

    def __init__(self) -> None:
        sample = load_sample("mzj.dibao")
        self.resource = sample.resource
        self.parties = {pid: m.party for pid, m in build_members().items()}
        self.subs = [
            Subscription(
                id="ds-rsj",
                resource=self.resource.code,
                subscriber="rsj",
                jurisdiction="110105000000",
                purpose="低保资格核验",
                delivery=ShareMethod.SERVICE,
            )
        ]
        self.generation = 1
        self.keys: Any = None
        self.read_on: list[int] = []

    def subscription_list(self) -> list[Subscription]:
        self.read_on.append(threading.get_ident())
        return list(self.subs)

    def party_map(self) -> dict[str, Any]:
        return dict(self.parties)

    def resources(self) -> dict[str, Any]:
        return {self.resource.code: self.resource}

    def revoke(self) -> None:
        self.subs = [s.model_copy(update={"status": SubscriptionStatus.REVOKED}) for s in self.subs]
        self.generation += 1


def test_the_book_is_rebuilt_off_the_loop_and_a_change_applies_to_the_next_call() -> None:
    tables = ControlTables()
    book = AccessBook(tables)  # type: ignore[arg-type]
    rsj = tables.parties["rsj"]

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        await asyncio.gather(*(book.synced() for _ in range(5)))
        assert len(tables.read_on) == 1, "concurrent calls share one rebuild"
        assert tables.read_on[0] != loop_thread
        grant = book.grant(rsj, "dibao", None, None, sync=False)
        assert grant.policy_version.startswith("ds-rsj@")
        await book.synced()
        assert len(tables.read_on) == 1, "no rebuild while the generation stands"
        tables.revoke()
        await book.synced()
        assert len(tables.read_on) == 2 and tables.read_on[1] != loop_thread
        with pytest.raises(AccessDenied) as refused:
            book.grant(rsj, "dibao", None, None, sync=False)
        assert refused.value.status == 403 and refused.value.reason == "revoked"

    asyncio.run(scenario())


def test_a_rebuild_replaces_the_book_whole_with_no_grant_of_the_old_generation() -> None:
    tables = ControlTables()
    book = AccessBook(tables)  # type: ignore[arg-type]
    rsj = tables.parties["rsj"]
    book.grant(rsj, "dibao", None, None)
    stale = book._book  # what a call that started before the change holds
    tables.revoke()
    book.resource("dibao")  # the rebuild
    assert book._book is not stale and not book._book.grants
    with pytest.raises(AccessDenied):
        book.grant(rsj, "dibao", None, None)


def test_keys_digest_is_sha256_over_sorted_newline_terminated_keys() -> None:
    keys = ["110105198008018862", "9111000010000000XQ", "社区-01"]
    expected = hashlib.sha256()
    for key in sorted(keys):
        expected.update(key.encode() + b"\n")
    assert keys_digest(reversed(keys)) == expected.hexdigest()


class RecordingProducer:
    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.lock = threading.Lock()

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any = None) -> None:
        with self.lock:
            self.values.append(value)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def test_audit_writer_chunks_every_event_exactly_once() -> None:
    # No broker: librdkafka connects lazily, and the producer is replaced before use.
    writer = AuditWriter("127.0.0.1:1", "audit", node="n1", chunk=7, interval_s=0.01)
    producer = RecordingProducer()
    writer._producer = producer  # type: ignore[assignment]

    def write(base: int) -> None:
        for i in range(500):
            writer.write({"n": base + i})

    threads = [threading.Thread(target=write, args=(t * 1000,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.close(1) == 0
    chunks = [orjson.loads(v) for v in producer.values]
    assert all(c["kind"] == CHUNK_KIND and c["node"] == "n1" for c in chunks)
    assert all(1 <= len(c["events"]) <= 7 for c in chunks)
    seen = [e["n"] for c in chunks for e in c["events"]]
    assert sorted(seen) == sorted(t * 1000 + i for t in range(4) for i in range(500))
