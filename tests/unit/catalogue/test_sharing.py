"""Rules that follow from the catalogue: who may subscribe, who must approve."""

from __future__ import annotations

import pytest

from hub.catalogue.binding import bind_schema
from hub.catalogue.samples import load_sample
from hub.catalogue.sharing import Approver, NotSubscribable, required_approvals, subscribable
from tests.unit.catalogue.conftest import SCHEMA, entry


def test_approvals_follow_share_attribute_and_classification() -> None:
    assert required_approvals(load_sample("shzl.wangge").resource) == set()  # 无条件共享
    assert required_approvals(load_sample("mzj.dibao").resource) == {"owner"}
    assert required_approvals(load_sample("gaj.huji").resource) == {"owner", "security_admin"}
    assert {a.value for a in Approver} == {"owner", "security_admin"}


def test_not_shared_resources_cannot_be_subscribed() -> None:
    raw = entry(share="not_shared", share_conditions="", share_basis="《户口登记条例》第十条")
    resource = bind_schema(raw, SCHEMA)
    allowed, why = subscribable(resource)
    assert not allowed and "不予共享" in why and "户口登记条例" in why
    with pytest.raises(NotSubscribable, match="不予共享"):
        required_approvals(resource)


def test_deprecated_resources_cannot_be_subscribed() -> None:
    deprecation = {"reason": "并入新目录", "at": "2026-01-01T00:00:00Z", "by": "mzj"}
    resource = bind_schema(entry(status="deprecated", deprecation=deprecation), SCHEMA)
    allowed, why = subscribable(resource)
    assert not allowed and "deprecated: 并入新目录" in why
    assert subscribable(bind_schema(entry(), SCHEMA)) == (True, "")
