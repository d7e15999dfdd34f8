"""The tamper-evident audit on real Kafka: delivery events from the router, control events
from the api, the notary's chain with signed checkpoints, verification of the live topics,
of a tampered export and of tampered topic copies, and the auditor's api and CLI."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from hub import kafka
from hub.apiclient import ApiClient, ApiError
from hub.audit.digest import record_ids_digest
from hub.audit.notary import Notary, NotaryConfig
from hub.audit.query import rows_of
from hub.audit.signing import ensure_signing_key, public_bytes
from hub.audit.store import read_log, read_topic
from hub.audit.verify import verify_log
from hub.cli import main as govhub
from hub.demo.world import generate_records
from hub.parties.model import Party, PartyKind, Role, hash_token, new_token
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

RECORDS = 120


@dataclass
class AuditWorld:
    world: HubWorld
    notary: Notary
    auditor: ApiClient
    admin: ApiClient
    public_hex: str

    @property
    def topics(self):  # type: ignore[no-untyped-def]
        return self.world.runtime.state.topics

    def wait_chained(self, timeout: float = 60.0) -> None:
        """Until every committed audit event is chained and sealed by a checkpoint."""
        deadline = time.monotonic() + timeout
        while True:
            log = read_log(self.world.bootstrap, self.topics.audit, self.topics.audit_chain)
            report = verify_log(log, self.notary._key.public_key())
            events = sum(len(v) for v in log.events.values())
            chained = sum(s.chained for s in report.partitions.values())
            unsealed = sum(s.unsealed for s in report.partitions.values())
            if events and chained == events and unsealed == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{chained}/{events} chained, {unsealed} unsealed")
            time.sleep(0.3)


def _account(world: HubWorld, party_id: str, role: Role) -> ApiClient:
    token = new_token(party_id)
    world.runtime.state.put_party(
        Party(
            id=party_id,
            name=party_id,
            kind=PartyKind.DEPARTMENT,
            region_code="110105000000",
            roles=(role,),
            token_hash=hash_token(token),
        )
    )
    return ApiClient(world.runtime.api_url, token)


@pytest.fixture(scope="module")
def audit(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    with hub_world(kafka_bootstrap, tmp_path_factory.mktemp("audit")) as world:
        state = world.runtime.state
        key = ensure_signing_key(state.keys, world.runtime.kms)
        prefix = world.config.kafka.topic_prefix
        notary = Notary(
            world.bootstrap,
            state.topics,
            key,
            NotaryConfig(
                transactional_id=f"{prefix}notary",
                group_id=f"{prefix}notary",
                checkpoint_every=7,
                checkpoint_interval_s=0.5,
            ),
        )
        stop = threading.Event()
        thread = threading.Thread(target=notary.run, args=(stop,), daemon=True)
        thread.start()
        try:
            auditor = _account(world, "auditor-1", Role.AUDITOR)
            admin = _account(world, "sysadmin-1", Role.SYSTEM_ADMIN)
            world.publish(generate_records(RECORDS, invalid=0))
            assert world.receive("rsj", RECORDS).records == RECORDS
            # Control changes through the api, a refused one and a failed sign-in.
            for _ in range(4):  # events of one actor share a partition
                admin.call("POST", "/v1/parties/chaowai-shenlu/suspend", {"reason": "撤并"})
                admin.call("POST", "/v1/parties/chaowai-shenlu/resume", {})
            with pytest.raises(ApiError):
                ApiClient(world.runtime.api_url, "ghp_rsj.not-the-token").call(
                    "GET", "/v1/subscriptions"
                )
            with pytest.raises(ApiError):
                auditor.call("POST", "/v1/parties/chaowai-shenlu/suspend", {"reason": "x"})
            audit_world = AuditWorld(
                world, notary, auditor, admin, public_bytes(key.public_key()).hex()
            )
            audit_world.wait_chained()
            yield audit_world
        finally:
            stop.set()
            thread.join(30)


def test_live_trail_verifies_and_frames_carry_their_record_ids(audit: AuditWorld) -> None:
    topics = audit.topics
    log = read_log(audit.world.bootstrap, topics.audit, topics.audit_chain)
    report = verify_log(log, audit.notary._key.public_key())
    assert report.ok, [str(f) for f in report.findings]
    assert sum(s.checkpoints for s in report.partitions.values()) >= 1
    rows = [
        r for p, events in log.events.items() for e in events for r in rows_of(p, e.offset, e.value)
    ]
    deliveries = [r for r in rows if r.kind == "delivery"]
    assert deliveries and all(r.ids_digest == record_ids_digest(r.record_ids) for r in deliveries)
    assert all(len(r.record_ids) == r.record_count for r in deliveries)
    to_rsj = [rid for r in deliveries if r.recipient == "rsj" for rid in r.record_ids]
    assert len(to_rsj) == len(set(to_rsj)) == RECORDS
    actions = {(r.action, r.actor, r.outcome) for r in rows if r.kind == "control"}
    assert ("party.suspend", "sysadmin-1", "ok") in actions
    assert ("party.resume", "sysadmin-1", "ok") in actions
    assert ("party.suspend", "auditor-1", "denied") in actions
    assert ("sign-in.failed", "rsj", "failed") in actions
    assert not any(b"not-the-token" in e.value for ev in log.events.values() for e in ev)


def _export(audit: AuditWorld, path: Path, capsys: pytest.CaptureFixture[str]) -> list[bytes]:
    env_args = ["--config", str(_config_file(audit))]
    assert govhub(["audit", "export", "--format", "jsonl", "--output", str(path), *env_args]) == 0
    capsys.readouterr()
    return path.read_bytes().splitlines()


def _config_file(audit: AuditWorld) -> Path:
    cfg = audit.world.config
    path = audit.world.tmp / "hub.toml"
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{cfg.kafka.bootstrap_servers}"\n'
        f'topic_prefix = "{cfg.kafka.topic_prefix}"\n'
        f'[crypto]\nkek_file = "{cfg.crypto.kek_file}"\n',
        encoding="utf-8",
    )
    return path


def _verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = govhub(["audit", "verify", "--json", *argv])
    out = capsys.readouterr().out
    return code, orjson.loads(out)


def _events(lines: list[bytes], partition: int) -> list[int]:
    return [
        i
        for i, line in enumerate(lines)
        if (doc := orjson.loads(line)).get("type") == "event" and doc["partition"] == partition
    ]


def _busiest(lines: list[bytes]) -> int:
    counts = {p: len(_events(lines, p)) for p in range(3)}
    return max(counts, key=lambda p: counts[p])


def test_tampered_export_names_each_event(
    audit: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _export(audit, tmp_path / "trail.jsonl", capsys)
    code, report = _verify(capsys, "--input", str(tmp_path / "trail.jsonl"))
    assert code == 0 and report["ok"], report["findings"]
    # The signed heads of this report anchor later verifications (--since).
    earlier = tmp_path / "earlier.json"
    earlier.write_bytes(orjson.dumps(report))
    trail = str(tmp_path / "trail.jsonl")
    assert _verify(capsys, "--input", trail, "--since", str(earlier))[0] == 0
    sealed = {p: s for p, s in report["partitions"].items() if s["sealed_seq"] is not None}
    assert sealed
    part, summary = next(iter(sealed.items()))
    summary["sealed_seq"] += 1000  # a head the trail never reached: as if cut off since
    earlier.write_bytes(orjson.dumps(report))
    code, cut = _verify(capsys, "--input", trail, "--since", str(earlier))
    assert code == 1 and [(f["kind"], str(f["partition"])) for f in cut["findings"]] == [
        ("truncated", part)
    ]

    p = _busiest(lines)
    idx = _events(lines, p)
    assert len(idx) >= 5, "the test needs five events in one partition"
    offset_of = {i: orjson.loads(lines[i])["offset"] for i in idx}
    tampered = list(lines)
    # modified: the time inside one event's value
    doc = orjson.loads(tampered[idx[0]])
    doc["value"] = doc["value"].replace('"at_ms":', '"at_ms":1', 1)
    tampered[idx[0]] = orjson.dumps(doc)
    # removed: event idx[4]
    removed = tampered.pop(idx[4])
    # re-ordered: event idx[3] moved in front of idx[1]
    tampered.insert(idx[1], tampered.pop(idx[3]))
    assert orjson.loads(removed)["offset"] == offset_of[idx[4]]
    path = tmp_path / "tampered.jsonl"
    path.write_bytes(b"\n".join(tampered) + b"\n")

    code, report = _verify(capsys, "--input", str(path), "--public-key", audit.public_hex)
    assert code == 1
    found = {(f["kind"], f["offset"]) for f in report["findings"]}
    assert ("modified", offset_of[idx[0]]) in found
    assert ("removed", offset_of[idx[4]]) in found
    moved = {f["offset"] for f in report["findings"] if f["kind"] == "reordered"}
    assert moved == {offset_of[idx[3]]}
    assert len(report["findings"]) == 3, report["findings"]

    # A forged checkpoint (another key) is named too.
    other = tmp_path / "other-key.jsonl"
    cps = [i for i, line in enumerate(lines) if orjson.loads(line).get("type") == "checkpoint"]
    doc = orjson.loads(lines[cps[0]])
    doc["hash"] = "f" * 64
    forged = list(lines)
    forged[cps[0]] = orjson.dumps(doc)
    other.write_bytes(b"\n".join(forged) + b"\n")
    code, report = _verify(capsys, "--input", str(other))
    assert code == 1 and [f["kind"] for f in report["findings"]] == ["checkpoint-invalid"]


def test_tampered_topic_copies_are_named(
    audit: AuditWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = audit.topics
    boot = audit.world.bootstrap
    prefix = audit.world.config.kafka.topic_prefix
    copy_audit, copy_chain = f"{prefix}copy.audit", f"{prefix}copy.chain"
    admin = AdminClient({"bootstrap.servers": boot})
    for future in admin.create_topics(
        [NewTopic(copy_audit, num_partitions=3), NewTopic(copy_chain, num_partitions=3)]
    ).values():
        future.result(30)
    events: dict[int, list[tuple[int, bytes]]] = {}
    for p, offset, value in read_topic(boot, topics.audit):
        events.setdefault(p, []).append((offset, value or b""))
    p = max(events, key=lambda k: len(events[k]))
    chosen = events[p]
    assert len(chosen) >= 5
    modified_offset, removed_offset = chosen[1][0], chosen[2][0]
    changed = list(chosen)
    changed[1] = (chosen[1][0], chosen[1][1].replace(b'"v":', b'"v": ', 1))
    del changed[2]
    changed[2], changed[3] = changed[3], changed[2]  # originals 3 and 4 swap
    events[p] = changed
    producer = kafka.producer(boot, "test-copier")
    for partition, rows in events.items():
        for _, value in rows:
            producer.produce(copy_audit, value, None, partition)
    for partition, _, value in read_topic(boot, topics.audit_chain):
        producer.produce(copy_chain, value, None, partition)
    assert producer.flush(30) == 0

    code, report = _verify(
        capsys,
        "--config",
        str(_config_file(audit)),
        "--audit-topic",
        copy_audit,
        "--chain-topic",
        copy_chain,
    )
    assert code == 1
    found = {(f["kind"], f["partition"], f["offset"]) for f in report["findings"]}
    assert ("modified", p, modified_offset) in found
    assert ("removed", p, removed_offset) in found
    assert any(k == "reordered" and part == p for k, part, _ in found)
    assert len(found) == 3, report["findings"]
    # The untouched originals still verify through the CLI, with the published key.
    code, report = _verify(capsys, "--config", str(_config_file(audit)))
    assert code == 0, report["findings"]


def test_auditor_api_events_lineage_csv_and_verify(audit: AuditWorld) -> None:
    auditor = audit.auditor
    page = auditor.call("GET", "/v1/audit/events?recipient=rsj&kind=delivery&limit=2")
    assert page["total"] >= 1 and len(page["events"]) <= 2
    assert page["complete"] and page["caught_up"]
    assert all(e["recipient"] == "rsj" for e in page["events"])
    one = auditor.call(
        "GET", "/v1/audit/events?recipient=rsj&kind=delivery&record_ids=true&limit=1"
    )
    record_id = one["events"][0]["record_ids"][0]
    lineage = auditor.call("GET", f"/v1/audit/lineage/{record_id}")
    recipients = {d["recipient"] for d in lineage["deliveries"]}
    assert "rsj" in recipients and len(recipients) >= 2  # the district dept and a street
    assert all(d["source_offset"] is not None and d["view_schemas"] for d in lineage["deliveries"])
    by_record = auditor.call("GET", f"/v1/audit/events?record_id={record_id}")
    assert by_record["total"] == len(lineage["deliveries"])
    future = auditor.call("GET", "/v1/audit/events?from=2100-01-01T00:00:00Z")
    assert future["total"] == 0
    with pytest.raises(ApiError) as bad:
        auditor.call("GET", "/v1/audit/events?from=yesterday")
    assert bad.value.status == 400
    assert auditor.call("GET", "/v1/audit/verify")["ok"] is True
    with pytest.raises(ApiError) as denied:
        audit.admin.call("GET", "/v1/audit/events")
    assert denied.value.status == 403

    request = urllib.request.Request(
        audit.world.runtime.api_url + "/v1/audit/export.csv?kind=control",
        headers={"Authorization": f"Bearer {auditor.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode("utf-8-sig")
    header, *rows = text.splitlines()
    assert header.startswith("at,at_ms,kind,actor,action")
    assert any(",party.suspend," in row for row in rows)


def test_audit_cli_events_and_lineage(
    audit: AuditWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    api = ["--api-url", audit.world.runtime.api_url, "--token", str(audit.auditor.token)]
    assert govhub(["audit", "events", "--kind", "control", "--json", *api]) == 0
    answer = orjson.loads(capsys.readouterr().out)
    assert {e["action"] for e in answer["events"]} >= {"party.suspend", "sign-in.failed"}
    page = audit.auditor.call(
        "GET", "/v1/audit/events?recipient=jianwai&kind=delivery&record_ids=true&limit=1"
    )
    record_id = page["events"][0]["record_ids"][0]
    assert govhub(["audit", "lineage", record_id, *api]) == 0
    out = capsys.readouterr().out
    assert "jianwai" in out and f"record {record_id} reached" in out
