"""The demo's small world: one district, two streets, four communities, two departments.

Region codes are real 统计用区划代码 of Beijing's Chaoyang district (朝阳区 110105) and two
of its streets (建外街道 110105001, 朝外街道 110105002); community codes follow the rules.
"""

from __future__ import annotations

import base64
import datetime
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from hub.catalogue.quality import id_card_check_char
from hub.crypto.keyrelease import KemSuite, generate_recipient_key
from hub.parties.model import Party, PartyKind, PublicKey, hash_token, new_token
from hub.subscriptions.model import Subscription
from hub.topics import ensure_resource_topics


@dataclass(frozen=True)
class Member:
    """A party of the demo with the secrets only it would hold."""

    party: Party
    token: str
    private_key: bytes


DISTRICT = ("chaoyang", "朝阳区", "110105000000")
STREETS = (
    ("jianwai", "建外街道", "110105001000"),
    ("chaowai", "朝外街道", "110105002000"),
)
COMMUNITIES = (
    ("jianwai-yonganli", "永安里社区", "110105001001", "jianwai"),
    ("jianwai-guanghuali", "光华里社区", "110105001002", "jianwai"),
    ("chaowai-jixiangli", "吉祥里社区", "110105002001", "chaowai"),
    ("chaowai-shenlu", "神路街社区", "110105002002", "chaowai"),
)
PUBLISHER = ("mzj", "朝阳区民政局", "110105000000")
CONSUMER_DEPT = ("rsj", "朝阳区人力资源和社会保障局", "110105000000")


def _member(pid: str, name: str, kind: PartyKind, region: str, parent: str | None) -> Member:
    token = new_token(pid)
    private, public = generate_recipient_key(KemSuite.X25519)
    party = Party(
        id=pid,
        name=name,
        kind=kind,
        region_code=region,
        parent=parent,
        token_hash=hash_token(token),
        public_keys=(PublicKey(kem="x25519", key=base64.b64encode(public).decode()),),
    )
    return Member(party, token, private)


def build_members() -> dict[str, Member]:
    members: dict[str, Member] = {}
    members[PUBLISHER[0]] = _member(
        PUBLISHER[0], PUBLISHER[1], PartyKind.DEPARTMENT, PUBLISHER[2], None
    )
    members[CONSUMER_DEPT[0]] = _member(
        CONSUMER_DEPT[0], CONSUMER_DEPT[1], PartyKind.DEPARTMENT, CONSUMER_DEPT[2], None
    )
    members[DISTRICT[0]] = _member(DISTRICT[0], DISTRICT[1], PartyKind.UNIT, DISTRICT[2], None)
    for pid, name, region in STREETS:
        members[pid] = _member(pid, name, PartyKind.UNIT, region, DISTRICT[0])
    for pid, name, region, parent in COMMUNITIES:
        members[pid] = _member(pid, name, PartyKind.UNIT, region, parent)
    return members


def build_subscriptions(resource: str) -> list[Subscription]:
    """Each street and community gets its own territory; 人社局 gets the whole district."""
    subs = [
        Subscription(
            id=f"sub-{CONSUMER_DEPT[0]}-{resource}",
            resource=resource,
            subscriber=CONSUMER_DEPT[0],
            jurisdiction=CONSUMER_DEPT[2],
            purpose="低保对象参保核查",
        )
    ]
    for pid, _, region in STREETS:
        subs.append(
            Subscription(
                id=f"sub-{pid}-{resource}",
                resource=resource,
                subscriber=pid,
                jurisdiction=region,
                purpose="街道低保动态管理",
            )
        )
    for pid, _, region, _ in COMMUNITIES:
        subs.append(
            Subscription(
                id=f"sub-{pid}-{resource}",
                resource=resource,
                subscriber=pid,
                jurisdiction=region,
                purpose="社区入户走访",
            )
        )
    return subs


def _id_card(rng: random.Random, birth: datetime.date) -> str:
    first17 = f"110105{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    return first17 + id_card_check_char(first17)


def generate_records(count: int, seed: int = 7, invalid: int = 5) -> list[dict[str, Any]]:
    """Synthetic 低保 records across the four communities, plus ``invalid`` bad ones."""
    try:
        from faker import Faker
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise SystemExit("the demo needs Faker: pip install 'govhub[demo]'") from exc
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    records = []
    for i in range(count):
        community = COMMUNITIES[i % len(COMMUNITIES)]
        birth = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randint(0, 25_000))
        records.append(
            {
                "id_card": _id_card(rng, birth),
                "name": fake.name(),
                "region_code": community[2],
                "household_size": rng.randint(1, 6),
                "amount": str(Decimal(rng.randint(60_000, 300_000)) / 100),
                "approved_on": (
                    datetime.date(2026, 1, 1) + datetime.timedelta(days=rng.randint(0, 300))
                ).isoformat(),
                "category": "URBAN",
                "address": f"北京市朝阳区{community[1]}{fake.street_address()}",
            }
        )
    # Bad input the hub must keep in the dead-letter topic with the reason.
    for i in range(invalid):
        bad: dict[str, Any] = dict(records[i])
        if i % 2 == 0:
            bad["region_code"] = "11010500100X"  # not 12 digits
        else:
            bad["id_card"] = bad["id_card"][:17] + ("0" if bad["id_card"][17] != "0" else "1")
        records.append(bad)
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def provision(
    state: Any,
    admin: Any,
    sample: Any,
    members: dict[str, Member],
    subscriptions: list[Subscription],
) -> int:
    """Write the world into the hub's control state; returns the source schema id."""
    schema_id: int = state.registry.register(sample.resource.subject, sample.schema_json)
    state.put_resource(sample.resource)
    ensure_resource_topics(admin, state.topics, sample.resource.department, sample.resource.code)
    for member in members.values():
        state.put_party(member.party)
    for sub in subscriptions:
        state.put_subscription(sub)
    return schema_id
