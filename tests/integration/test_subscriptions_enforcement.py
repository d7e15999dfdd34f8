"""Policies enforced by the router, one subscription per tier (department, street,
community): projection, masking kinds, approver grants and row predicates, checked on what
each subscriber's SDK writes to its sink."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.demo.world import generate_records
from hub.policy.masking import MaskKind, masker
from hub.policy.predicates import Op, Predicate
from hub.subscriptions.model import Subscription
from hub.subscriptions.pseudonyms import ensure_pseudonym_root, load_pseudonym_keys
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


def policy_sub(sid: str, who: str, region: str, **policy: Any) -> Subscription:
    return Subscription.model_validate(
        {"id": sid, "resource": "dibao", "subscriber": who, "jurisdiction": region,
         "purpose": "policy", **policy}
    )  # fmt: skip


def received(world: HubWorld, recipient: str, subscription: str) -> list[dict[str, Any]]:
    path = world.tmp / "received" / f"{recipient}.jsonl"
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [r for r in rows if r["subscription"] == subscription]


def test_policies_per_tier_reach_the_subscribers(world: HubWorld) -> None:
    state = world.runtime.state
    ensure_pseudonym_root(state.keys, world.runtime.kms)
    big = Predicate(field="household_size", op=Op.GE, value=3)
    urban = Predicate(field="category", op=Op.IN, values=("URBAN",))
    subs = [
        policy_sub(
            "pol-rsj", "rsj", "110105000000",
            fields=["id_card", "name", "household_size", "approved_on"],
            masking={"id_card": "pseudonym", "approved_on": "month"},
            filters=[big.model_dump()],
        ),
        policy_sub(
            "pol-street", "jianwai", "110105001000",
            masking={"name": {"kind": "keep", "first": 1}, "approved_on": "year",
                     "address": "redact"},
            filters=[urban.model_dump()],
        ),
        policy_sub(
            "pol-community", "jianwai-yonganli", "110105001001",
            fields=["id_card", "name", "region_code", "amount"], unmasked=["name"],
        ),
    ]  # fmt: skip
    for sub in subs:
        state.put_subscription(sub)
    data = generate_records(40, invalid=0)
    world.publish(data)
    source = {f"test:{i}": row for i, row in enumerate(data)}
    in_street = [r for r in data if r["region_code"].startswith("110105001")]
    in_community = [r for r in data if r["region_code"] == "110105001001"]
    big_ones = [r for r in data if r["household_size"] >= 3]

    # Department: projection, keyed pseudonym, month; only the big households.
    world.receive("rsj", len(data) + len(big_ones))
    rows = received(world, "rsj", "pol-rsj")
    assert len(rows) == len(big_ones)
    keys = load_pseudonym_keys(state.keys, world.runtime.kms)
    assert keys is not None
    pseudonym = masker(MaskKind.PSEUDONYM, keys.for_recipient("rsj"))
    for row in rows:
        original, got = source[row["record_id"]], row["data"]
        assert set(got) == {"id_card", "name", "household_size", "approved_on"}
        assert got["approved_on"] == original["approved_on"][:8] + "01"
        assert got["id_card"] == pseudonym(original["id_card"])  # joinable for rsj
        assert got["household_size"] >= 3

    # Street: keep-first on the name, year, redacted address; the predicate holds for all.
    world.receive("jianwai", 2 * len(in_street))
    rows = received(world, "jianwai", "pol-street")
    assert len(rows) == len(in_street)
    for row in rows:
        original, got = source[row["record_id"]], row["data"]
        assert got["name"] == original["name"][0] + "*" * (len(original["name"]) - 1)
        assert got["approved_on"] == original["approved_on"][:4] + "-01-01"
        assert got["address"] == "******" and got["id_card"] == original["id_card"]

    # Community: the approver released the name; the id card keeps its default mask.
    world.receive("jianwai-yonganli", 2 * len(in_community))
    rows = received(world, "jianwai-yonganli", "pol-community")
    assert len(rows) == len(in_community)
    for row in rows:
        original, got = source[row["record_id"]], row["data"]
        assert set(got) == {"id_card", "name", "region_code", "amount"}
        assert got["name"] == original["name"]
        assert got["id_card"] == original["id_card"][:6] + "********" + original["id_card"][-4:]
