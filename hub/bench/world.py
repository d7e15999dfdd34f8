"""Benchmark worlds: parties, subscriptions and records at a chosen scale.

The *standard mix* of the exchange benchmark: 1,000 communities (社区) under 100 streets
(街道) under 10 districts (区), and 5 departments each subscribed for two districts. Every
record matches 4 recipients — its community, street, district and one department — under 3
distinct views: communities get the personal fields masked (their tier's default), streets
and districts the whole record, departments a projection without the contact fields.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from hub.catalogue.binding import bind_schema
from hub.catalogue.quality import id_card_check_char
from hub.catalogue.samples import SampleResource, load_sample
from hub.parties.model import Party, PartyKind
from hub.subscriptions.model import Subscription

CITY = "110100000000"  # 北京市市辖区
DEPARTMENT_FIELDS = (
    "id_card",
    "name",
    "region_code",
    "household_size",
    "amount",
    "approved_on",
    "category",
)
# A fixed, never-valid token hash: bench parties never log in, and hashing thousands of
# real tokens would dominate the set-up time.
_NO_LOGIN = "scrypt$disabled$disabled"


def bench_resource() -> SampleResource:
    """The 低保 sample widened to ~300-byte records: contact phone, bank card, remark."""
    base = load_sample("mzj.dibao")
    schema = orjson.loads(base.schema_json)
    schema["fields"] += [
        {"name": "phone", "type": "string", "doc": "联系电话"},
        {"name": "bank_card", "type": "string", "doc": "发放账户"},
        {"name": "remark", "type": "string", "doc": "家庭情况说明"},
    ]
    entry = base.resource.model_dump(mode="json")
    entry["fields"] = [
        f for f in entry["fields"] if f["name"] not in {"phone", "bank_card", "remark"}
    ] + [
        {"name": "phone", "title": "联系电话", "personal": "phone", "classification": "important"},
        {
            "name": "bank_card",
            "title": "发放账户",
            "personal": "bank_card",
            "classification": "important",
        },
        {"name": "remark", "title": "家庭情况说明"},
    ]
    for key in [k for k, v in entry.items() if v is None]:
        del entry[key]
    schema_json = orjson.dumps(schema).decode()
    return SampleResource(bind_schema(entry, schema_json), schema_json)


@dataclass(frozen=True)
class BenchWorld:
    parties: list[Party]
    subscriptions: list[Subscription]
    communities: list[str]  # region codes records are spread over
    recipients_per_record: int


def _party(pid: str, kind: PartyKind, region: str, parent: str | None) -> Party:
    return Party(
        id=pid, name=pid, kind=kind, region_code=region, parent=parent, token_hash=_NO_LOGIN
    )


def build_world(
    resource: str,
    districts: int = 10,
    streets_per_district: int = 10,
    communities_per_street: int = 10,
    departments: int = 5,
) -> BenchWorld:
    """Districts 1101DD, streets 1101DDSSS, communities 1101DDSSSCCC; each department
    subscribes for an equal share of the districts (one subscription per district)."""
    if districts > 99 or streets_per_district > 999 or communities_per_street > 999:
        raise ValueError("region codes allow at most 99 districts, 999 streets, 999 communities")
    parties: list[Party] = []
    subs: list[Subscription] = []
    communities: list[str] = []
    for d in range(1, districts + 1):
        district = f"1101{d:02d}000000"
        did = f"d{d:02d}"
        parties.append(_party(did, PartyKind.UNIT, district, None))
        subs.append(_sub(resource, did, district, "区级统筹"))
        for s in range(1, streets_per_district + 1):
            street = f"1101{d:02d}{s:03d}000"
            sid = f"s{d:02d}{s:03d}"
            parties.append(_party(sid, PartyKind.UNIT, street, did))
            subs.append(_sub(resource, sid, street, "街道低保动态管理"))
            for c in range(1, communities_per_street + 1):
                community = f"1101{d:02d}{s:03d}{c:03d}"
                cid = f"c{d:02d}{s:03d}{c:03d}"
                parties.append(_party(cid, PartyKind.UNIT, community, sid))
                subs.append(_sub(resource, cid, community, "社区入户走访"))
                communities.append(community)
    dept_count = max(1, min(departments, districts))
    for k in range(dept_count):
        dept = f"dept{k + 1}"
        parties.append(_party(dept, PartyKind.DEPARTMENT, CITY, None))
        for d in range(k + 1, districts + 1, dept_count):
            subs.append(
                _sub(resource, dept, f"1101{d:02d}000000", "参保核查", fields=DEPARTMENT_FIELDS)
            )
    return BenchWorld(parties, subs, communities, 4)


def _sub(
    resource: str,
    party: str,
    jurisdiction: str,
    purpose: str,
    fields: tuple[str, ...] | None = None,
) -> Subscription:
    return Subscription(
        id=f"sub-{party}-{jurisdiction}",
        resource=resource,
        subscriber=party,
        jurisdiction=jurisdiction,
        purpose=purpose,
        fields=fields,
    )


_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
_ROADS = ("建国路", "朝阳北路", "光华路", "东三环中路", "金台路", "团结湖路", "甜水园街")
_REMARKS = (
    "家庭成员患慢性病，长期服药，收入不稳定，需定期入户核查。",
    "户主残疾，子女在读，家庭无固定收入来源，按季度复核。",
    "独居老人，子女在外地务工，赡养费不足，社区重点关注。",
)


def record_pool(communities: list[str], size: int, seed: int = 11) -> list[dict[str, Any]]:
    """``size`` distinct records spread evenly over ``communities`` (~300 bytes in Avro)."""
    rng = random.Random(seed)
    pool: list[dict[str, Any]] = []
    for i in range(size):
        region = communities[i % len(communities)]
        birth = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randint(0, 25_000))
        first17 = f"{region[:6]}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
        pool.append(
            {
                "id_card": first17 + id_card_check_char(first17),
                "name": rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=2)),
                "region_code": region,
                "household_size": rng.randint(1, 6),
                "amount": Decimal(rng.randint(60_000, 300_000)) / 100,
                "approved_on": datetime.date(2026, 1, 1)
                + datetime.timedelta(days=rng.randint(0, 300)),
                "category": "URBAN",
                "address": f"北京市朝阳区{rng.choice(_ROADS)}{rng.randint(1, 300)}号院"
                f"{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元{rng.randint(101, 2808)}室",
                "phone": f"13{rng.randint(100_000_000, 999_999_999)}",
                "bank_card": f"6222{rng.randint(10**14, 10**15 - 1)}",
                "remark": rng.choice(_REMARKS) + rng.choice(_REMARKS),
            }
        )
    return pool
