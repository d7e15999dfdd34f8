"""The subscription lifecycle through REST and the CLI on real Kafka, with two api
instances sharing one topic prefix: every step is written through one and read through
the other."""

from __future__ import annotations

import argparse
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from hub.apiclient import ApiClient, ApiError
from hub.catalogue.model import Resource
from hub.catalogue.samples import load_sample
from hub.config import isolated_config
from hub.parties.bootstrap import bootstrap_admin
from hub.runtime import HubRuntime
from hub.subscriptions import commands as subscription_commands
from hub.subscriptions.model import Subscription, SubscriptionStatus

pytestmark = pytest.mark.integration

T = TypeVar("T")
SAMPLE = load_sample("mzj.dibao")
PARTIES: list[dict[str, Any]] = [
    {
        "id": "mzj",
        "name": "民政局",
        "kind": "department",
        "region_code": "110105000000",
        "roles": ["publisher"],
    },
    {
        "id": "mzj-approver",
        "name": "民政局审批",
        "kind": "department",
        "region_code": "110105000000",
        "department": "mzj",
        "roles": ["approver"],
    },
    {
        "id": "secadmin",
        "name": "安全保密管理员",
        "kind": "department",
        "region_code": "110105000000",
        "roles": ["security_admin"],
    },
    {"id": "rsj", "name": "人社局", "kind": "department", "region_code": "110105000000"},
    {"id": "jianwai", "name": "建外街道", "kind": "unit", "region_code": "110105001000"},
    {
        "id": "yonganli",
        "name": "永安里社区",
        "kind": "unit",
        "region_code": "110105001001",
        "parent": "jianwai",
    },
]


def variant(code: str, **changes: Any) -> Resource:
    return Resource.model_validate({**SAMPLE.resource.model_dump(), "code": code, **changes})


@dataclass
class ControlPlane:
    """Two api instances (``a`` and ``b``) of one hub, its first admin and some parties."""

    a: HubRuntime
    b: HubRuntime
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, which: str, party: str | None = None) -> ApiClient:
        runtime = self.a if which == "a" else self.b
        return ApiClient(runtime.api_url, self.admin_token if party is None else self.tokens[party])

    def create_parties(self, bodies: list[dict[str, Any]]) -> None:
        admin = self.api("a")
        for body in bodies:
            self.tokens[body["id"]] = admin.call("POST", "/v1/parties", body)["token"]

    def register(self, resource: Resource) -> None:
        self.a.state.registry.register(resource.subject, SAMPLE.schema_json)
        self.a.state.put_resource(resource)


def eventually(fn: Callable[[], T], ok: Callable[[T], bool] = bool, timeout: float = 5.0) -> T:
    """``fn()`` once it satisfies ``ok`` — the other instance reads writes within a second."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while True:
        try:
            value = fn()
            if ok(value):
                return value
        except ApiError as exc:
            if time.monotonic() > deadline or exc.status not in (401, 403, 404, 409):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last value {value!r}")
        time.sleep(0.05)


def eventually_refused(fn: Callable[[], Any], timeout: float = 5.0) -> ApiError:
    """The error ``fn()`` raises once the other instance has read the change."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fn()
        except ApiError as exc:
            return exc
        if time.monotonic() > deadline:
            raise AssertionError(f"still accepted after {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def plane(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ControlPlane]:
    prefix = f"sub{uuid.uuid4().hex[:8]}."
    config = isolated_config(kafka_bootstrap, prefix, tmp_path / "state")
    _, admin_token = bootstrap_admin(config, "sysadmin", "系统管理员", "110105000000", 30)
    a = HubRuntime(config, roles=("api",))
    b = HubRuntime(isolated_config(kafka_bootstrap, prefix, tmp_path / "state"), roles=("api",))
    try:
        for runtime in (a, b):
            runtime.start()
            runtime.wait_ready()
        yield ControlPlane(a, b, admin_token)
    finally:
        b.stop()
        a.stop()


def statuses(answer: dict[str, Any]) -> list[str]:
    return [e["action"] for e in answer["history"]]


def test_full_lifecycle_through_two_api_instances(plane: ControlPlane) -> None:
    plane.create_parties(PARTIES)
    plane.register(SAMPLE.resource)  # 有条件共享, 重要
    plane.register(variant("dibao-core", classification="core"))
    plane.register(
        variant(
            "dibao-closed",
            share="not_shared",
            share_conditions="",
            share_basis="《社会救助暂行办法》第六十六条",
        )
    )
    community_b = plane.api("b", "yonganli")

    # Request through b (which must first read the party written through a).
    request = {"resource": "dibao", "purpose": "社区入户走访", "masking": {"approved_on": "month"}}
    sub = eventually(lambda: community_b.call("POST", "/v1/subscriptions", request))
    assert sub["status"] == "checked" and sub["pending_approvals"] == ["owner"]
    assert sub["check_due_ms"] and sub["answer_due_ms"] and not sub["overdue"]
    assert sub["effective_masking"]["id_card"] == "id_card"  # the 社区 default
    sid = sub["id"]

    # Bad input: 4xx with a clear message.
    community_a = plane.api("a", "yonganli")
    bad = [
        (request, 409, "duplicate request"),
        ({**request, "jurisdiction": "110105001000"}, 400, "wider"),
        ({**request, "fields": ["salary"]}, 400, "lacks: ['salary']"),
        ({**request, "jurisdiction": "11010500100X"}, 400, "jurisdiction"),
        ({**request, "resource": "nope"}, 404, "no resource nope"),
    ]
    eventually(lambda: community_a.call("GET", "/v1/subscriptions/" + sid))
    for body, status, message in bad:
        with pytest.raises(ApiError) as err:
            community_a.call("POST", "/v1/subscriptions", body)
        assert err.value.status == status and message in err.value.message, body

    # 不予共享: refused at once, with the reason.
    refused = community_b.call("POST", "/v1/subscriptions", {**request, "resource": "dibao-closed"})
    assert refused["status"] == "refused" and "不予共享" in refused["reason"]

    # The owner's approver sees it on b, approves it on a with a narrower policy.
    approver_b, approver_a = plane.api("b", "mzj-approver"), plane.api("a", "mzj-approver")
    pending = eventually(
        lambda: approver_b.call("GET", "/v1/subscriptions?scope=to_approve"),
        lambda answer: answer["count"] == 1,
    )
    assert pending["subscriptions"][0]["id"] == sid
    policy = {
        "fields": ["name", "region_code", "household_size", "approved_on"],
        "masking": {"approved_on": "month"},
        "filters": [{"field": "household_size", "op": "ge", "value": 2}],
    }
    with pytest.raises(ApiError) as err:
        plane.api("a", "rsj").call("POST", f"/v1/subscriptions/{sid}/approve", {})
    assert err.value.status == 403
    granted = approver_a.call(
        "POST", f"/v1/subscriptions/{sid}/approve", {"policy": policy, "duration_days": 30}
    )
    assert granted["status"] == "active" and granted["fields"] == policy["fields"]
    shown = eventually(
        lambda: community_b.call("GET", f"/v1/subscriptions/{sid}"),
        lambda answer: answer["version"] == granted["version"],
    )
    assert statuses(shown) == ["requested", "checked", "approved", "activated"]
    assert shown["history"][2]["actor"] == "mzj-approver"
    assert shown["expires_at_ms"] - shown["starts_at_ms"] == 30 * 86_400_000

    # 核心: the owner's approver and the security admin, on different instances.
    rsj_b = plane.api("b", "rsj")
    core = eventually(
        lambda: rsj_b.call(
            "POST", "/v1/subscriptions", {"resource": "dibao-core", "purpose": "参保核查"}
        )
    )
    assert core["pending_approvals"] == ["owner", "security_admin"]
    half = eventually(
        lambda: approver_b.call("POST", f"/v1/subscriptions/{core['id']}/approve", {})
    )
    assert half["status"] == "checked" and half["pending_approvals"] == ["security_admin"]
    security_a = plane.api("a", "secadmin")
    done = eventually(
        lambda: security_a.call("POST", f"/v1/subscriptions/{core['id']}/approve", {})
    )
    assert done["status"] == "active" and done["effective_masking"]["id_card"] == "id_card"

    # Reject with a reason.
    street_b = plane.api("b", "jianwai")
    street = eventually(lambda: street_b.call("POST", "/v1/subscriptions", request))
    rejected = eventually(
        lambda: approver_b.call(
            "POST", f"/v1/subscriptions/{street['id']}/reject", {"reason": "用途与职责不符"}
        )
    )
    assert rejected["status"] == "rejected" and rejected["reason"] == "用途与职责不符"

    # Suspend on b, resume on a, revoke on b; a shows the whole history.
    security_b = plane.api("b", "secadmin")
    reason = {"reason": "数据使用核查"}
    eventually(lambda: security_b.call("POST", f"/v1/subscriptions/{sid}/suspend", reason))
    eventually(lambda: security_a.call("POST", f"/v1/subscriptions/{sid}/resume", {}))
    revoked = eventually(
        lambda: security_b.call("POST", f"/v1/subscriptions/{sid}/revoke", {"reason": "违规"})
    )
    final = eventually(
        lambda: community_a.call("GET", f"/v1/subscriptions/{sid}"),
        lambda answer: answer["version"] == revoked["version"],
    )
    assert statuses(final)[-3:] == ["suspended", "resumed", "revoked"]
    assert final["status"] == "revoked" and final["reason"] == "违规"
    with pytest.raises(ApiError) as err:
        plane.api("a", "rsj").call("GET", f"/v1/subscriptions/{sid}")
    assert err.value.status == 403  # neither theirs nor on their resources

    # Lists: mine, owned (the department's), all (三员 only).
    mine = community_b.call("GET", "/v1/subscriptions?scope=mine")
    assert {s["status"] for s in mine["subscriptions"]} == {"revoked", "refused"}
    owned = eventually(
        lambda: plane.api("b", "mzj").call("GET", "/v1/subscriptions?scope=owned"),
        lambda answer: answer["count"] == 4,
    )
    assert "history" not in owned["subscriptions"][0]
    with pytest.raises(ApiError) as err:
        community_b.call("GET", "/v1/subscriptions?scope=all")
    assert err.value.status == 403
    assert plane.api("a").call("GET", "/v1/subscriptions?scope=all")["count"] == 4


def test_overdue_requests_show_in_the_api_and_metrics(plane: ControlPlane) -> None:
    plane.create_parties(PARTIES[:2] + PARTIES[4:])
    plane.register(SAMPLE.resource)
    late = Subscription(
        id="sub-late",
        resource="dibao",
        subscriber="yonganli",
        jurisdiction="110105001001",
        purpose="走访",
        status=SubscriptionStatus.CHECKED,
        requested_at_ms=1,
        answer_due_ms=2,
        required_approvals=("owner",),  # type: ignore[arg-type]
    )
    plane.a.state.put_subscription(late)
    approver = plane.api("b", "mzj-approver")
    overdue = eventually(
        lambda: approver.call("GET", "/v1/subscriptions?scope=to_approve&overdue=true"),
        lambda answer: answer["count"] == 1,
    )
    assert overdue["subscriptions"][0]["overdue"] is True

    def metrics() -> str:
        with urllib.request.urlopen(plane.b.api_url + "/metrics", timeout=5) as response:
            return str(response.read().decode())

    text = eventually(metrics, lambda t: 'govhub_subscriptions_overdue{stage="answer"} 1.0' in t)
    assert 'govhub_subscriptions_requests{state="checked"}' in text


def test_credentials_and_roles_are_checked(plane: ControlPlane) -> None:
    plane.create_parties(PARTIES)
    admin_a = plane.api("a")
    # Role escalation: nobody changes their own roles; 三员 never combine.
    with pytest.raises(ApiError) as err:
        admin_a.call("PUT", "/v1/parties/sysadmin/roles", {"roles": ["system_admin", "auditor"]})
    assert err.value.status == 403 and "role escalation" in err.value.message
    with pytest.raises(ApiError) as err:
        plane.api("a", "mzj-approver").call(
            "PUT", "/v1/parties/mzj-approver/roles", {"roles": ["approver", "publisher"]}
        )
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        admin_a.call("PUT", "/v1/parties/secadmin/roles", {"roles": ["security_admin", "approver"]})
    assert err.value.status == 409 and "三员" in err.value.message
    # An expired token is refused on both instances.
    party = plane.a.state.party("rsj")
    assert party is not None
    plane.a.state.put_party(party.model_copy(update={"token_expires_at_ms": 1}))
    for which in ("a", "b"):
        client = plane.api(which, "rsj")
        error = eventually_refused(lambda client=client: client.call("GET", "/v1/parties/rsj"))
        assert error.status == 401 and "expired" in error.message


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="govhub")
    subscription_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code = int(args.func(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_mirrors_the_api(plane: ControlPlane, capsys: pytest.CaptureFixture[str]) -> None:
    plane.create_parties(PARTIES)
    plane.register(SAMPLE.resource)

    def as_party(party: str, which: str = "a") -> list[str]:
        runtime = plane.a if which == "a" else plane.b
        return ["--api-url", runtime.api_url, "--token", plane.tokens[party]]

    code, out, _ = eventually(
        lambda: run_cli(
            capsys,
            "subscription",
            "request",
            "dibao",
            "--purpose",
            "社区走访",
            "--fields",
            "name,region_code,approved_on",
            "--mask",
            "name=keep:1:0",
            "--filter",
            "category:eq:URBAN",
            "--json",
            *as_party("yonganli", "b"),
        ),
        lambda result: result[0] == 0,
    )
    assert code == 0
    sid = orjson.loads(out)["id"]
    code, out, _ = run_cli(
        capsys, "subscription", "list", "--scope", "to_approve", *as_party("mzj-approver", "a")
    )
    assert code == 0 and sid in out
    code, out, _ = run_cli(
        capsys,
        "subscription",
        "approve",
        sid,
        "--days",
        "7",
        "--mask",
        "approved_on=year",
        *as_party("mzj-approver", "a"),
    )
    assert code == 0 and "[active]" in out and "approved_on=year" in out and "name=" in out
    code, out, _ = run_cli(
        capsys,
        "subscription",
        "revoke",
        sid,
        "--reason",
        "到期前收回",
        *as_party("mzj-approver", "b"),
    )
    assert code == 0 and "[revoked]" in out and "到期前收回" in out
    code, _, err = run_cli(capsys, "subscription", "show", "sub-nope", *as_party("yonganli"))
    assert code == 2 and err.startswith("govhub: error: 404") and err.count("\n") == 1
