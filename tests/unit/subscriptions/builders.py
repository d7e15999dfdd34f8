"""A small world for lifecycle tests: the 低保 resource in its variants and the parties."""

from __future__ import annotations

from typing import Any

from hub.catalogue.model import Classification, ShareAttribute
from hub.catalogue.samples import load_sample
from hub.parties.model import Party, PartyKind, Role
from hub.subscriptions.requests import SubscriptionRequest

SAMPLE = load_sample("mzj.dibao")
CONDITIONAL = SAMPLE.resource
UNCONDITIONAL = CONDITIONAL.model_copy(
    update={"share": ShareAttribute.UNCONDITIONAL, "share_conditions": ""}
)
CORE = CONDITIONAL.model_copy(update={"classification": Classification.CORE})
NOT_SHARED = CONDITIONAL.model_copy(
    update={"share": ShareAttribute.NOT_SHARED, "share_basis": "《社会救助暂行办法》"}
)

T0 = 1_780_000_000_000  # a Thursday, 2026-05-28


def party(pid: str, kind: PartyKind, region: str, *roles: Role, **kw: Any) -> Party:
    return Party(
        id=pid,
        name=pid,
        kind=kind,
        region_code=region,
        roles=roles or (Role.SUBSCRIBER,),
        **kw,
    )


STREET = party("jianwai", PartyKind.UNIT, "110105001000")
COMMUNITY = party("yonganli", PartyKind.UNIT, "110105001001", parent="jianwai")
RSJ = party("rsj", PartyKind.DEPARTMENT, "110105000000")
MZJ_APPROVER = party(
    "mzj-approver", PartyKind.DEPARTMENT, "110105000000", Role.APPROVER, department="mzj"
)
OTHER_APPROVER = party(
    "rsj-approver", PartyKind.DEPARTMENT, "110105000000", Role.APPROVER, department="rsj"
)
SECURITY = party("secadmin", PartyKind.DEPARTMENT, "110105000000", Role.SECURITY_ADMIN)


def request(**kw: Any) -> SubscriptionRequest:
    return SubscriptionRequest.model_validate({"resource": "dibao", "purpose": "入户走访", **kw})
