"""The hash chain and its verification on plain data: every kind of tampering is named."""

from __future__ import annotations

import dataclasses
import io

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.chain import ChainHead, Link, sign_checkpoint
from hub.audit.events import control_event
from hub.audit.signing import key_id
from hub.audit.store import AuditLog, StoredEvent, export_jsonl, read_jsonl
from hub.audit.verify import anchors_of, verify_log

KEY = Ed25519PrivateKey.generate()


def build(n: int = 12, partitions: int = 2, alg: str = "sha256", every: int = 4) -> AuditLog:
    log = AuditLog()
    for p in range(partitions):
        head = ChainHead(p, alg)
        for offset in range(n):
            value = orjson.dumps(
                control_event(f"party-{offset}", "party.create", target=f"t{offset}")
            )
            log.add_event(StoredEvent(p, offset, value))
            link = head.append(offset, orjson.loads(value)["id"], value)
            log.chain.setdefault(p, []).append(link)
            if (offset + 1) % every == 0:
                log.chain[p].append(
                    sign_checkpoint(KEY, key_id(KEY.public_key()), link, 1000 + offset)
                )
    return log


def kinds(log: AuditLog) -> list[tuple[str, int, int | None]]:
    return [(f.kind, f.partition, f.offset) for f in verify_log(log, KEY.public_key()).findings]


@pytest.mark.parametrize("alg", ["sha256", "sm3"])
def test_an_untouched_log_verifies(alg: str) -> None:
    log = build(alg=alg)
    report = verify_log(log, KEY.public_key())
    assert report.ok, report.findings
    assert report.partitions[0].chained == 12 and report.partitions[0].checkpoints == 3
    assert report.partitions[1].unsealed == 0


def test_modified_event_is_named() -> None:
    log = build()
    event = log.events[1][5]
    log.events[1][5] = StoredEvent(1, 5, event.value.replace(b"party-5", b"party-X"))
    assert kinds(log) == [("modified", 1, 5)]


def test_modified_event_id_is_still_modified() -> None:
    log = build()
    doc = orjson.loads(log.events[0][3].value)
    doc["id"] = "f" * 32
    log.events[0][3] = StoredEvent(0, 3, orjson.dumps(doc))
    assert kinds(log) == [("modified", 0, 3)]


def test_removed_events_are_named() -> None:
    log = build()
    del log.events[0][7]
    del log.events[0][2]
    assert kinds(log) == [("removed", 0, 2), ("removed", 0, 7)]


def test_reordered_event_is_named() -> None:
    log = build()
    events = log.events[1]
    events.insert(9, events.pop(2))  # offset 2 moved after offset 9
    assert kinds(log) == [("reordered", 1, 2)]


def test_swapped_neighbours_name_one_event() -> None:
    log = build()
    events = log.events[0]
    events[4], events[5] = events[5], events[4]
    found = kinds(log)
    assert len(found) == 1 and found[0][0] == "reordered" and found[0][2] in (4, 5)


def test_inserted_event_is_named_and_pending_is_not() -> None:
    log = build()
    forged = orjson.dumps(control_event("intruder", "party.create"))
    log.events[0].insert(6, StoredEvent(0, 99, forged))
    pending = orjson.dumps(control_event("late", "party.create"))
    log.events[1].append(StoredEvent(1, 12, pending))
    report = verify_log(log, KEY.public_key())
    assert [(f.kind, f.partition) for f in report.findings] == [("inserted", 0)]
    assert report.partitions[1].pending == 1


def test_recomputed_chain_breaks_the_signed_checkpoint() -> None:
    log = build()
    # An attacker alters event 1 and recomputes every link after it, but cannot sign.
    log.events[0][1] = StoredEvent(0, 1, log.events[0][1].value.replace(b"party-1", b"party-Z"))
    head = ChainHead(0, "sha256")
    rebuilt: list = []
    for record in log.chain[0]:
        if isinstance(record, Link):
            event = log.events[0][record.seq]
            rebuilt.append(head.append(record.offset, record.event_id, event.value))
        else:
            rebuilt.append(record)
    log.chain[0] = rebuilt
    found = kinds(log)
    assert found and {k for k, _, _ in found} == {"checkpoint-invalid"}
    assert ("checkpoint-invalid", 0, 3) in found


def test_altered_link_and_forged_checkpoint() -> None:
    log = build()
    link = log.chain[1][2]
    assert isinstance(link, Link)
    log.chain[1][2] = dataclasses.replace(link, event_digest="0" * 64)
    other = Ed25519PrivateKey.generate()
    last = log.chain[0][-2]
    assert isinstance(last, Link)
    log.chain[0][-1] = sign_checkpoint(other, "forger", last, 5)
    found = kinds(log)
    assert ("chain-altered", 1, 2) in found
    assert ("modified", 1, 2) in found
    assert ("checkpoint-invalid", 0, 11) in found


def test_without_a_public_key_checkpoints_are_not_trusted() -> None:
    report = verify_log(build(n=4, partitions=1), None)
    assert [f.kind for f in report.findings] == ["checkpoint-invalid"]


def test_export_round_trip_and_malformed_lines() -> None:
    log = build(n=5)
    out = io.BytesIO()
    lines = export_jsonl(log, out, {"alg": "sha256"})
    assert lines == 1 + 10 + 10 + 2
    text = out.getvalue().splitlines()
    again = read_jsonl(text)
    assert verify_log(again, KEY.public_key()).ok
    broken = read_jsonl([*text, b"{not json", b'{"type": "event", "partition": "x"}'])
    assert [f.kind for f in verify_log(broken, KEY.public_key()).findings] == [
        "malformed",
        "malformed",
    ]


def test_a_cut_off_tail_is_found_against_an_earlier_report() -> None:
    log = build(n=12, partitions=1)
    earlier = verify_log(log, KEY.public_key()).to_json()
    assert earlier["partitions"]["0"]["sealed_seq"] == 11
    # The newest four events go, with their links and the checkpoint signing them: the
    # remainder is a consistent, signed chain on its own...
    del log.events[0][8:]
    log.chain[0] = [r for r in log.chain[0] if r.seq < 8]
    assert verify_log(log, KEY.public_key()).ok
    # ...but not against the head seen before.
    found = verify_log(log, KEY.public_key(), anchors_of(earlier)).findings
    assert [(f.kind, f.seq) for f in found] == [("truncated", 11)]
