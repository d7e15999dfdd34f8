"""Key release follows the subscription's state: refused while it is suspended or once it
has expired, released again when it is resumed (revocation: ``test_exchange_path.py``).

Each refusal is checked for a data key the community was released a moment before, so a
refusal can only come from the subscription's state. Calls go through the subscriber
SDK's hub client, as a subscriber's would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.sdk.errors import SubscriptionRevoked
from connectors.sdk.hubclient import HubClient
from hub.apiclient import ApiClient
from hub.crypto.frames import peek_header
from hub.crypto.keyrelease import KemSuite
from hub.demo.world import generate_records
from hub.parties.model import Party, PartyKind, Role, hash_token, new_token
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

COMMUNITY = "jianwai-yonganli"
SUBSCRIPTION = f"sub-{COMMUNITY}-dibao"


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


def community_key(world: HubWorld) -> bytes:
    """A data key id of the community's frames (records published and routed first)."""
    world.publish(generate_records(8, invalid=0))
    assert world.receive(COMMUNITY, 2).records == 2
    consumer = world.consumer(world.runtime.state.topics.delivery)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None and msg.key() == COMMUNITY.encode():
                    return peek_header(msg.value() or b"").key_id
    finally:
        consumer.close()
    raise AssertionError(f"no frame of {COMMUNITY} found")


def release(world: HubWorld, key_id: bytes) -> bytes:
    member = world.members[COMMUNITY]
    hub = HubClient(world.runtime.api_url, member.token)
    return hub.release_key(COMMUNITY, SUBSCRIPTION, key_id, member.private_key, KemSuite.X25519)


def test_key_release_refused_while_suspended_and_again_after_resume(world: HubWorld) -> None:
    key_id = community_key(world)
    assert len(release(world, key_id)) == 32
    token = new_token("secadmin")
    world.runtime.state.put_party(
        Party(
            id="secadmin",
            name="安全保密管理员",
            kind=PartyKind.DEPARTMENT,
            region_code="110105000000",
            roles=(Role.SECURITY_ADMIN,),
            token_hash=hash_token(token),
        )
    )
    admin = ApiClient(world.runtime.api_url, token)
    suspended = admin.call(
        "POST", f"/v1/subscriptions/{SUBSCRIPTION}/suspend", {"reason": "入户核查暂停"}
    )
    assert suspended["status"] == "suspended"
    with pytest.raises(SubscriptionRevoked, match="suspended"):
        release(world, key_id)
    resumed = admin.call("POST", f"/v1/subscriptions/{SUBSCRIPTION}/resume", {})
    assert resumed["status"] == "active"
    assert len(release(world, key_id)) == 32


def test_key_release_refused_once_expired(world: HubWorld) -> None:
    key_id = community_key(world)
    assert len(release(world, key_id)) == 32
    state = world.runtime.state
    sub = state.subscription(SUBSCRIPTION)
    assert sub is not None
    # Expiry is driven by the clock alone: nobody writes anything when it passes.
    expires_at = int(time.time() * 1000) + 1_500
    state.put_subscription(sub.model_copy(update={"expires_at_ms": expires_at}))
    assert len(release(world, key_id)) == 32  # still valid until then
    time.sleep(max(0.0, expires_at / 1000 - time.time()) + 0.1)
    with pytest.raises(SubscriptionRevoked, match="expired"):
        release(world, key_id)
