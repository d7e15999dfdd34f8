"""A city-sized exchange for the fault tests: three resources, 1,000+ recipients.

Ten districts (区) of Beijing, ten streets (街道) in each and ten communities (社区) in
each street — 1,110 units — plus four city and district departments. Three
sample resources flow through the hub: 低保 (``mzj.dibao``), 社保参保 (``rsj.shebao``) and
网格事件 (``shzl.wangge``).

Every grant is described twice: once as the hub's :class:`Subscription`, and once as a
:class:`Grant` in plain Python — jurisdiction prefix, row filter, projected fields and the
masks the catalogue's rules call for. The checker computes what each recipient is entitled
to from the grants and the generated rows alone, never through the router's policy code.
Some grants are dormant on purpose (revoked, suspended, expired, not started yet, a
suspended party, a jurisdiction beyond the party's own territory): their recipients are
entitled to nothing from them.
"""

from __future__ import annotations

import base64
import datetime
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from confluent_kafka import Producer

from hub.catalogue.codes import id_card_check_char
from hub.catalogue.samples import SampleResource, load_sample
from hub.crypto.keyrelease import KemSuite, generate_recipient_key
from hub.parties.model import (
    DEFAULT_TOKEN_COST,
    Party,
    PartyKind,
    PartyStatus,
    PublicKey,
    hash_token,
    new_token,
)
from hub.policy.masking import MaskKind
from hub.policy.predicates import Op, Predicate
from hub.state import ControlState
from hub.subscriptions.model import Subscription, SubscriptionStatus
from hub.topics import ensure_resource_topics

# Sample resource name -> catalogue code.
SAMPLES = {"mzj.dibao": "dibao", "rsj.shebao": "shebao", "shzl.wangge": "wangge"}

DISTRICTS = (
    ("110101", "东城区"),
    ("110102", "西城区"),
    ("110105", "朝阳区"),
    ("110106", "丰台区"),
    ("110107", "石景山区"),
    ("110108", "海淀区"),
    ("110109", "门头沟区"),
    ("110111", "房山区"),
    ("110112", "通州区"),
    ("110113", "顺义区"),
)
STREETS_PER_DISTRICT = 10
COMMUNITIES_PER_STREET = 10
CITY = "110100000000"
CHAOYANG = "110105000000"

# Personal fields of each resource (catalogue ``personal`` tags) and the default mask a
# 社区/村 unit gets for them: 身份证号 keeps 6+4, 姓名 the surname, 手机号 3+4, 地址 the first
# 6 characters, 银行卡号 the last 4; "other" is redacted.
GRASSROOTS_MASKS = {
    "dibao": {"id_card": "id_card", "name": "name", "address": "address"},
    "shebao": {"id_card": "id_card", "name": "name", "bank_card": "bank_card", "phone": "phone"},
    "wangge": {
        "description": "redact",
        "location": "address",
        "reporter_name": "name",
        "reporter_phone": "phone",
    },
}

SHEBAO_STATUSES = ("参保缴费", "暂停缴费", "终止参保")
WANGGE_SUMMARY = ("event_id", "region_code", "category", "urgency", "status")
SHEBAO_SUMMARY = ("enrolment_id", "id_card", "name", "insurance_type", "status", "region_code")
URGENCIES = ("一般", "紧急", "特急")
DAY_MS = 86_400_000


def territory(code: str) -> str:
    """The region codes a jurisdiction covers start with this: the code without its
    trailing all-zero levels (province 2, city 2, county 2, township 3, village 3 digits)."""
    end = 2
    for start, stop in ((2, 4), (4, 6), (6, 9), (9, 12)):
        if code[start:stop].strip("0"):
            end = stop
    return code[:end]


def mask_value(kind: str, value: str | None) -> str | None:
    """The masked form of ``value`` under mask ``kind`` (docs/architecture.md, Masking)."""
    if value is None:
        return None
    if kind == "redact":
        return "******"
    head, tail = {
        "name": (1, 0),
        "id_card": (6, 4),
        "phone": (3, 4),
        "address": (6, 0),
        "bank_card": (0, 4),
    }[kind]
    n = len(value)
    if (n <= head + tail and kind != "name") or n <= 1:
        return "*" * n  # too short to keep anything
    return value[:head] + "*" * (n - head - tail) + value[n - tail :]


@dataclass(frozen=True)
class Grant:
    """One subscription as the test understands it: who, what, where, which rows, how."""

    subscription: Subscription
    prefix: str  # the jurisdiction: region codes starting with it
    live: bool  # False: the recipient is entitled to nothing through this grant
    accepts: Callable[[dict[str, Any]], bool] = lambda row: True
    fields: tuple[str, ...] | None = None
    masks: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.subscription.id

    @property
    def recipient(self) -> str:
        return self.subscription.subscriber

    @property
    def resource(self) -> str:
        return self.subscription.resource

    @property
    def passthrough(self) -> bool:
        """Whole records, unmasked: the delivered bytes are the source bytes."""
        return self.fields is None and not self.masks

    def entitles(self, row: dict[str, Any]) -> bool:
        return self.live and row["region_code"].startswith(self.prefix) and self.accepts(row)

    def expected_view(self, source: dict[str, Any]) -> dict[str, Any]:
        """What the recipient must receive for the decoded source record ``source``."""
        names = self.fields if self.fields is not None else tuple(source)
        view = {name: source[name] for name in names}
        for name, kind in self.masks.items():
            if name in view:
                view[name] = mask_value(kind, view[name])
        return view


@dataclass(frozen=True)
class Member:
    """A party with the secrets only it holds (when it was given any)."""

    party: Party
    token: str | None = None
    private_key: bytes | None = None


@dataclass(frozen=True)
class SourceRow:
    record_id: str
    resource: str
    row: dict[str, Any]


@dataclass
class CityWorld:
    samples: dict[str, SampleResource]  # by resource code
    members: dict[str, Member]
    grants: list[Grant]
    communities: list[str] = field(default_factory=list)  # region codes
    streets: list[str] = field(default_factory=list)

    def grants_of(self, recipient: str) -> list[Grant]:
        return [g for g in self.grants if g.recipient == recipient]

    @property
    def recipients(self) -> list[str]:
        return sorted({g.recipient for g in self.grants})

    @property
    def live_recipients(self) -> list[str]:
        return sorted({g.recipient for g in self.grants if g.live})


# -- parties and grants ---------------------------------------------------------------------
def _party(
    pid: str,
    name: str,
    kind: PartyKind,
    region: str,
    parent: str | None = None,
    status: PartyStatus = PartyStatus.ACTIVE,
) -> Party:
    return Party(id=pid, name=name, kind=kind, region_code=region, parent=parent, status=status)


def with_credentials(party: Party, token_cost: int = DEFAULT_TOKEN_COST) -> Member:
    """Give ``party`` a token (hashed at ``token_cost``) and an X25519 key pair (for the
    key-release api)."""
    token = new_token(party.id)
    private, public = generate_recipient_key(KemSuite.X25519)
    key = PublicKey(kem="x25519", key=base64.b64encode(public).decode())
    token_hash = hash_token(token, cost=token_cost)
    updated = party.model_copy(update={"token_hash": token_hash, "public_keys": (key,)})
    return Member(updated, token, private)


def _grant(
    party: Party,
    resource: str,
    jurisdiction: str,
    *,
    accepts: Callable[[dict[str, Any]], bool] | None = None,
    filters: tuple[Predicate, ...] = (),
    masking: dict[str, MaskKind] | None = None,
    fields: tuple[str, ...] | None = None,
    suite: str | None = None,
) -> Grant:
    """A live grant of ``resource`` over ``jurisdiction``: ``filters`` for the hub and
    ``accepts`` for the test say the same thing each in its own terms; ``masking`` and
    ``fields`` are the policy's own masks and projection."""
    masking = masking or {}
    subscription = Subscription(
        id=f"{party.id}-{resource}",
        resource=resource,
        subscriber=party.id,
        jurisdiction=jurisdiction,
        purpose="fault test",
        filters=filters,
        masking=masking,
        fields=fields,
        suite=suite,
    )
    return Grant(
        subscription,
        territory(jurisdiction),
        live=True,
        accepts=accepts or (lambda row: True),
        fields=fields,
        masks={name: kind.value for name, kind in masking.items()},
    )


def _dormant(grant: Grant, **changes: Any) -> Grant:
    """``grant`` changed so that it must deliver nothing."""
    return replace(grant, subscription=grant.subscription.model_copy(update=changes), live=False)


def build_city(
    now_ms: int,
    credentials_for: tuple[str, ...] = (),
    all_credentials: bool = False,
    token_cost: int = DEFAULT_TOKEN_COST,
) -> CityWorld:
    """The parties and grants of the city. ``credentials_for``: party ids given a token and
    a key pair (hashing a token is deliberately slow, so only the few the test logs in as);
    ``all_credentials``: every party, its token hashed at ``token_cost``."""
    samples = {code: load_sample(name) for name, code in SAMPLES.items()}
    parties: list[Party] = []
    grants: list[Grant] = []
    communities: list[str] = []
    streets: list[str] = []
    urgent = ("紧急", "特急")
    paying = ("参保缴费", "暂停缴费")

    for publisher, name in (("mzj", "民政局"), ("rsj", "人社局"), ("shzl", "社会治理中心")):
        parties.append(_party(publisher, name, PartyKind.DEPARTMENT, CITY))

    for county, county_name in DISTRICTS:
        district = _party(f"d-{county}", county_name, PartyKind.UNIT, county + "000000")
        parties.append(district)
        region = district.region_code
        grants += [
            _grant(district, "dibao", region, suite="SM4-GCM"),  # the 国密 suite
            _grant(
                district,
                "shebao",
                region,
                masking={"bank_card": MaskKind.BANK_CARD, "id_card": MaskKind.ID_CARD},
            ),
            _grant(
                district,
                "wangge",
                region,
                filters=(Predicate(field="urgency", op=Op.IN, values=urgent),),
                accepts=lambda row: row["urgency"] in urgent,
            ),
        ]
        for s in range(1, STREETS_PER_DISTRICT + 1):
            town = f"{county}{s:03d}"
            street = _party(
                f"s-{town}", f"{county_name}第{s}街道", PartyKind.UNIT, town + "000", district.id
            )
            parties.append(street)
            streets.append(street.region_code)
            region = street.region_code
            grants += [
                _grant(street, "dibao", region),
                _grant(
                    street,
                    "shebao",
                    region,
                    filters=(Predicate(field="status", op=Op.IN, values=paying),),
                    accepts=lambda row: row["status"] != "终止参保",
                ),
                _grant(street, "wangge", region, fields=WANGGE_SUMMARY)
                if s % 2
                else _grant(street, "wangge", region, masking={"reporter_phone": MaskKind.PHONE}),
            ]
            for c in range(1, COMMUNITIES_PER_STREET + 1):
                code = f"{town}{c:03d}"
                # Every 40 communities: a suspended party, and one grant of each kind that
                # must deliver nothing (revoked, suspended, expired, not started yet, a
                # jurisdiction beyond the party's own territory).
                dormant = len(communities) % 40
                community = _party(
                    f"c-{code}",
                    f"第{c}社区",
                    PartyKind.UNIT,
                    code,
                    street.id,
                    PartyStatus.SUSPENDED if dormant == 4 else PartyStatus.ACTIVE,
                )
                parties.append(community)
                communities.append(code)
                # 社区 units get every personal field masked by default (the hub derives
                # the masks from the catalogue; the test lists them).
                dibao = replace(_grant(community, "dibao", code), masks=GRASSROOTS_MASKS["dibao"])
                wangge = replace(
                    _grant(community, "wangge", code), masks=GRASSROOTS_MASKS["wangge"]
                )
                if dormant == 0:
                    dibao = _dormant(dibao, status=SubscriptionStatus.REVOKED)
                elif dormant == 1:
                    dibao = _dormant(dibao, status=SubscriptionStatus.SUSPENDED)
                elif dormant == 2:
                    wangge = _dormant(wangge, expires_at_ms=now_ms - DAY_MS)
                elif dormant == 3:
                    wangge = _dormant(
                        wangge, status=SubscriptionStatus.APPROVED, starts_at_ms=now_ms + DAY_MS
                    )
                elif dormant == 4:
                    dibao, wangge = replace(dibao, live=False), replace(wangge, live=False)
                elif dormant == 5:
                    wangge = _dormant(wangge, jurisdiction=region)  # the whole street
                grants += [dibao, wangge]

    # Departments, city-wide and district-wide.
    shi_rsj = _party("shi-rsj", "市人社局", PartyKind.DEPARTMENT, CITY)
    shi_mzj = _party("shi-mzj", "市民政局", PartyKind.DEPARTMENT, CITY)
    shi_gaj = _party("shi-gaj", "市公安局", PartyKind.DEPARTMENT, CITY)
    cy_wjw = _party("cy-wjw", "朝阳区卫健委", PartyKind.DEPARTMENT, CHAOYANG)
    parties += [shi_rsj, shi_mzj, shi_gaj, cy_wjw]
    grants += [
        _grant(
            shi_rsj,
            "dibao",
            CITY,
            filters=(Predicate(field="household_size", op=Op.GE, value=3),),
            accepts=lambda row: row["household_size"] >= 3,
        ),
        _grant(shi_mzj, "shebao", CITY, fields=SHEBAO_SUMMARY, masking={"name": MaskKind.NAME}),
        _grant(shi_gaj, "wangge", CITY),
        _grant(cy_wjw, "dibao", CHAOYANG),
        _grant(cy_wjw, "shebao", CHAOYANG),
        _grant(cy_wjw, "wangge", CHAOYANG),
    ]

    members = {
        p.id: with_credentials(p, token_cost)
        if all_credentials or p.id in credentials_for
        else Member(p)
        for p in parties
    }
    return CityWorld(samples, members, grants, communities, streets)


# -- records --------------------------------------------------------------------------------
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅"
_STREET_WORDS = ("建国路", "光华路", "朝阳北路", "东三环中路", "幸福大街", "安定路", "望京街")
_EVENTS = ("城市管理", "社会治安", "矛盾纠纷", "安全隐患", "民生服务", "环境保护")


def _id_card(rng: random.Random, county: str) -> str:
    birth = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randint(0, 25_000))
    first17 = f"{county}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    return first17 + id_card_check_char(first17)


def _name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2)))


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"


def _address(rng: random.Random) -> str:
    return f"北京市某区{rng.choice(_STREET_WORDS)}{rng.randint(1, 300)}号院{rng.randint(1, 30)}号楼"


def _dibao(rng: random.Random, region: str, i: int) -> dict[str, Any]:
    return {
        "id_card": _id_card(rng, region[:6]),
        "name": _name(rng),
        "region_code": region,
        "household_size": rng.randint(1, 6),
        "amount": f"{rng.randint(60_000, 300_000) / 100:.2f}",
        "approved_on": (
            datetime.date(2025, 1, 1) + datetime.timedelta(days=rng.randint(0, 300))
        ).isoformat(),
        "category": rng.choice(("URBAN", "RURAL")),
        "address": _address(rng),
    }


def _shebao(rng: random.Random, region: str, i: int) -> dict[str, Any]:
    return {
        "enrolment_id": f"SB{i:012d}",
        "id_card": _id_card(rng, region[:6]),
        "name": _name(rng),
        "insurance_type": rng.choice(("110", "170", "210", "310", "390", "410", "510")),
        "status": rng.choice(SHEBAO_STATUSES),
        "employer_uscc": None,
        "employer_name": rng.choice((None, "北京某某科技有限公司", "北京某某商贸有限公司")),
        "insured_since": (
            datetime.date(1995, 1, 1) + datetime.timedelta(days=rng.randint(0, 10_000))
        ).isoformat(),
        "contribution_base": f"{rng.randint(400_000, 3_000_000) / 100:.2f}",
        "region_code": region,
        "bank_card": rng.choice((None, f"6222{rng.randint(0, 10**15 - 1):015d}")),
        "phone": rng.choice((None, _phone(rng))),
    }


def _wangge(rng: random.Random, region: str, i: int) -> dict[str, Any]:
    reported = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        minutes=rng.randint(0, 200_000)
    )
    return {
        "event_id": f"WG{i:016d}",
        "region_code": region,
        "grid_code": f"{region}{rng.randint(1, 20):03d}",
        "category": rng.choice(_EVENTS),
        "subcategory": None,
        "description": f"居民反映{rng.choice(_STREET_WORDS)}附近问题，{_name(rng)}已到场",
        "location": _address(rng),
        "longitude": 116.0 + rng.random(),
        "latitude": 39.5 + rng.random(),
        "reporter_name": rng.choice((None, _name(rng))),
        "reporter_phone": rng.choice((None, _phone(rng))),
        "reported_at": reported.isoformat(),
        "urgency": rng.choice(URGENCIES),
        "status": rng.choice(("待受理", "处置中", "已办结")),
    }


_MAKERS = {"dibao": _dibao, "shebao": _shebao, "wangge": _wangge}


def generate_rows(world: CityWorld, counts: dict[str, int], seed: int = 11) -> list[SourceRow]:
    """Rows of every resource, interleaved; 92% in a community, 8% filed at street level."""
    rng = random.Random(seed)
    per_resource = {
        resource: [
            SourceRow(
                f"{resource}:{i}",
                resource,
                _MAKERS[resource](
                    rng,
                    rng.choice(world.communities)
                    if rng.random() < 0.92
                    else rng.choice(world.streets),
                    i,
                ),
            )
            for i in range(count)
        ]
        for resource, count in counts.items()
    }
    rows: list[SourceRow] = []
    longest = max(counts.values())
    for i in range(longest):
        rows.extend(batch[i] for batch in per_resource.values() if i < len(batch))
    return rows


def entitlements(world: CityWorld, rows: list[SourceRow]) -> dict[str, set[str]]:
    """Record ids each recipient must receive, from the grants and the rows alone."""
    expected: dict[str, set[str]] = {r: set() for r in world.recipients}
    # Grants by (resource, jurisdiction prefix): a row is looked up under every prefix of
    # its region code instead of being tested against every grant.
    by_prefix: dict[tuple[str, str], list[Grant]] = {}
    for grant in world.grants:
        if grant.live:
            by_prefix.setdefault((grant.resource, grant.prefix), []).append(grant)
    for source in rows:
        region = source.row["region_code"]
        for n in range(1, len(region) + 1):
            for grant in by_prefix.get((source.resource, region[:n]), ()):
                if grant.entitles(source.row):
                    expected[grant.recipient].add(source.record_id)
    return expected


# -- provisioning ---------------------------------------------------------------------------
def _bulk_write(bootstrap: str, topic: str, rows: Iterator[tuple[str, dict[str, Any]]]) -> None:
    """Control rows as ``ControlState`` writes them (key = id, value = JSON), in one go."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in rows:
        producer.produce(topic, key=key.encode(), value=orjson.dumps(value))
        producer.poll(0)
    assert producer.flush(30) == 0, f"control rows for {topic} not acknowledged"


def provision(state: ControlState, admin: Any, world: CityWorld) -> dict[str, int]:
    """Catalogue, schemas, topics, parties and subscriptions; returns schema id by resource."""
    schema_ids = {}
    for code, sample in world.samples.items():
        schema_ids[code] = state.registry.register(sample.resource.subject, sample.schema_json)
        state.put_resource(sample.resource)
        ensure_resource_topics(admin, state.topics, sample.resource.department, code)
    bootstrap = state.config.kafka.bootstrap_servers
    _bulk_write(
        bootstrap,
        state.parties.topic,
        ((m.party.id, m.party.model_dump(mode="json")) for m in world.members.values()),
    )
    _bulk_write(
        bootstrap,
        state.subscriptions.topic,
        ((g.id, g.subscription.model_dump(mode="json")) for g in world.grants),
    )
    assert state.catch_up_policy(30), "control state did not read the provisioned rows back"
    assert len(state.party_map()) == len(world.members)
    assert len(state.subscription_list()) == len(world.grants)
    return schema_ids
