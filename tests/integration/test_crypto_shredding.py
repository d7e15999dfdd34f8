"""Crypto-shredding: deleting a recipient's data keys makes its stored frames unreadable.

A security admin deletes a community's data keys through the api
(``POST /v1/parties/{id}/data-keys/delete``): each key record in ``_govhub.keys`` gets a
tombstone. From then on the api refuses to release those keys, a freshly started hub
has no copy to load, and the frames already stored for the community cannot be opened —
not by the community, not by the operator holding the hub's KEK. Every other recipient
still reads everything.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.sdk.errors import KeyFetchError
from connectors.sdk.hubclient import HubClient
from hub.apiclient import ApiClient, ApiError
from hub.controlstate import CompactedTable
from hub.crypto.errors import UnknownKeyError
from hub.crypto.frames import FrameHeader, open_frame, peek_header
from hub.crypto.keyrelease import KemSuite
from hub.crypto.keys import DataKeyRecord, unwrap_data_key
from hub.delivery import delivery_partition
from hub.demo.world import generate_records
from hub.parties import commands as party_commands
from hub.parties.model import Party, PartyKind, Role, hash_token, new_token
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

COMMUNITY = "jianwai-yonganli"  # 永安里社区: a quarter of the records
STREET = "jianwai"  # 建外街道: its street, half of the records
DISTRICT_DEPT = "rsj"  # 人社局: all records
RECORDS = 40


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


def govhub_party(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``govhub party ...`` as a user types it."""
    parser = argparse.ArgumentParser(prog="govhub")
    party_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["party", *argv])
    code = int(args.func(args))
    out, err = capsys.readouterr()
    return code, out, err


def admin_account(world: HubWorld, role: Role) -> ApiClient:
    """A 三员 account holding ``role``, logged in."""
    party_id = role.value.replace("_", "-")
    token = new_token(party_id)
    world.runtime.state.put_party(
        Party(
            id=party_id,
            name=role.value,
            kind=PartyKind.DEPARTMENT,
            region_code="110105000000",
            roles=(role,),
            token_hash=hash_token(token),
        )
    )
    return ApiClient(world.runtime.api_url, token)


def security_admin(world: HubWorld) -> ApiClient:
    """A 安全保密管理员 account."""
    return admin_account(world, Role.SECURITY_ADMIN)


def stored_frames(world: HubWorld, recipient: str) -> list[bytes]:
    """Every committed frame of ``recipient`` in its delivery partition."""
    topic = world.runtime.state.topics.delivery
    consumer = Consumer(
        {
            "bootstrap.servers": world.bootstrap,
            "group.id": f"shred-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        tp = TopicPartition(topic, delivery_partition(recipient, partitions))
        _, end = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)])
        frames = []
        deadline = time.monotonic() + 30
        while consumer.position([tp])[0].offset < end and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None and msg.key() == recipient.encode():
                    frames.append(msg.value() or b"")
        return frames
    finally:
        consumer.close()


def operator_keys(world: HubWorld) -> dict[bytes, bytes]:
    """What the operator can unwrap with the hub's KEK: every data key the control state
    holds, by key id (a table loaded from scratch, as a restarted hub would)."""
    table = CompactedTable(world.bootstrap, world.runtime.state.topics.keys)
    with table:
        rows = [row for key, row in table.items() if not key.startswith("_")]
    keys = {}
    for row in rows:
        record = DataKeyRecord.from_json(orjson.dumps(row))
        keys[record.key_id] = unwrap_data_key(world.runtime.kms, record)
    return keys


def open_all(frames: list[bytes], recipient: str, keys: dict[bytes, bytes]) -> int:
    """Open every frame; returns the number of entries (raises if one cannot be opened)."""

    def key_for(key_id: bytes) -> bytes:
        if key_id not in keys:
            raise UnknownKeyError(f"no key {key_id.hex()}")
        return keys[key_id]

    return sum(len(open_frame(frame, recipient, key_for)[1]) for frame in frames)


def read_everything(world: HubWorld, recipient: str, sink: str) -> int:
    """A fresh subscriber (no cursor, no cached key) reads the recipient's whole stream."""
    client = world.subscriber(recipient, sink_name=sink)
    client.run(threading.Event(), idle_timeout=2.0)
    return client.records


def headers(frames: list[bytes]) -> list[FrameHeader]:
    return [peek_header(frame) for frame in frames]


def test_deleted_keys_make_stored_frames_unreadable(
    world: HubWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = security_admin(world)
    world.publish(generate_records(RECORDS, invalid=0))
    expected = {COMMUNITY: RECORDS // 4, STREET: RECORDS // 2, DISTRICT_DEPT: RECORDS}
    for recipient, count in expected.items():
        assert world.receive(recipient, count).records == count, recipient

    frames = stored_frames(world, COMMUNITY)
    key_ids = {h.key_id for h in headers(frames)}
    assert frames and key_ids
    # Before: the operator can open every stored frame of the community.
    assert open_all(frames, COMMUNITY, operator_keys(world)) == expected[COMMUNITY]
    listed = admin.call("GET", f"/v1/parties/{COMMUNITY}/data-keys")
    assert {bytes.fromhex(k["key_id"]) for k in listed["keys"]} >= key_ids
    community = world.members[COMMUNITY]
    own = ApiClient(world.runtime.api_url, community.token)
    assert own.call("GET", f"/v1/parties/{COMMUNITY}/data-keys")["count"] == listed["count"]

    # Only a security admin deletes keys: not the recipient, not a street, not a system admin.
    body = {"reason": "recall: the community's device was lost"}
    others = [ApiClient(world.runtime.api_url, world.members[p].token) for p in (COMMUNITY, STREET)]
    for client in [*others, admin_account(world, Role.SYSTEM_ADMIN)]:
        with pytest.raises(ApiError) as refused:
            client.call("POST", f"/v1/parties/{COMMUNITY}/data-keys/delete", body)
        assert refused.value.status == 403
    with pytest.raises(ApiError) as refused:
        admin.call("POST", f"/v1/parties/{COMMUNITY}/data-keys/delete", {})
    assert refused.value.status == 400  # a reason is required

    # The security admin deletes them with the CLI.
    code, out, err = govhub_party(
        capsys,
        "delete-data-keys",
        COMMUNITY,
        "--reason",
        body["reason"],
        "--json",
        "--api-url",
        world.runtime.api_url,
        "--token",
        admin.token or "",
    )
    assert code == 0, err
    answer = orjson.loads(out)
    assert {bytes.fromhex(k) for k in answer["deleted"]} == {
        bytes.fromhex(k["key_id"]) for k in listed["keys"]
    }
    assert admin.call("GET", f"/v1/parties/{COMMUNITY}/data-keys")["count"] == 0
    with pytest.raises(ApiError) as nothing_left:
        admin.call("POST", f"/v1/parties/{COMMUNITY}/data-keys/delete", body)
    assert nothing_left.value.status == 404

    # Key release refuses every deleted key, through the SDK's own client.
    hub = HubClient(world.runtime.api_url, community.token)
    subscription = headers(frames)[0].subscription
    for key_id in key_ids:
        with pytest.raises(KeyFetchError, match="404"):
            hub.release_key(COMMUNITY, subscription, key_id, community.private_key, KemSuite.X25519)

    # A hub started now loads no copy, so not even the operator opens the stored frames.
    keys = operator_keys(world)
    assert not key_ids & keys.keys()
    for frame in frames:
        with pytest.raises(UnknownKeyError):
            open_all([frame], COMMUNITY, keys)

    # Everyone else is unaffected: their keys are there and fresh subscribers read all.
    for recipient in (STREET, DISTRICT_DEPT):
        theirs = stored_frames(world, recipient)
        assert open_all(theirs, recipient, keys) == expected[recipient]
        assert read_everything(world, recipient, f"{recipient}-after") == expected[recipient]


def test_records_after_the_deletion_are_readable_again(world: HubWorld) -> None:
    """Shredding is about what was stored: the subscription is still active, so what the
    router delivers afterwards must be sealed under a new key the community can fetch."""
    admin = security_admin(world)
    world.publish(generate_records(8, invalid=0))
    assert world.receive(COMMUNITY, 2).records == 2
    before = stored_frames(world, COMMUNITY)
    old = {h.key_id for h in headers(before)}
    admin.call("POST", f"/v1/parties/{COMMUNITY}/data-keys/delete", {"reason": "rotation"})

    world.publish(generate_records(8, invalid=0), start=100)
    assert world.receive(STREET, 8).records == 8  # the router has routed the new records
    after = headers(stored_frames(world, COMMUNITY))[len(before) :]
    assert after, "no frames delivered to the community after the deletion"
    reused = [h for h in after if h.key_id in old]
    assert not reused, (
        f"{len(reused)} of {len(after)} frames delivered after the deletion are sealed under "
        f"a deleted key ({reused[0].key_id.hex()}): nobody can ever read them"
    )
    community = world.members[COMMUNITY]
    hub = HubClient(world.runtime.api_url, community.token)
    for header in after:
        key = hub.release_key(
            COMMUNITY, header.subscription, header.key_id, community.private_key, KemSuite.X25519
        )
        assert len(key) == 32
