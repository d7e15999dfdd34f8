"""The web console in real headless Chromium, on a real hub (api + router) and broker.

The journey of issue #9: a department requests a subscription (with field errors shown in
Chinese first), the owner's approver approves it with masking, the requester sees the
grant, records flow (the live page shows them), the auditor finds a record's lineage, and
the security admin revokes the grant — effective at once. Every effect is also checked
through the REST API. Screenshots of the main pages (1366×768, and one at 390×844) go to a
temporary directory, or to ``GOVHUB_CONSOLE_SCREENSHOTS`` (``docs/console``) when set.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.apiclient import ApiClient, ApiError
from hub.catalogue.model import Resource
from hub.console.auditview import AuditQuery, AuditView
from hub.demo.world import generate_records
from hub.parties.model import Party, PartyKind, Role, hash_token, new_token
from hub.subscriptions.model import ApprovalRole, Subscription, SubscriptionStatus, now_ms
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("GOVHUB_CHROMIUM", "/usr/bin/chromium")
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
DAY_MS = 86_400_000

playwright_sync = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():  # scripts/bootstrap.sh installs Debian's chromium
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


def account(pid: str, name: str, roles: tuple[Role, ...], **extra: Any) -> tuple[Party, str]:
    token = new_token(pid)
    party = Party(
        id=pid,
        name=name,
        kind=extra.pop("kind", PartyKind.DEPARTMENT),
        region_code=extra.pop("region_code", "110105000000"),
        token_hash=hash_token(token),
        roles=roles,
        **extra,
    )
    return party, token


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[HubWorld, dict[str, str]]]:
    with hub_world(kafka_bootstrap, tmp_path, roles=("api", "router", "gateway")) as w:
        accounts = [
            account("wjw", "朝阳区卫生健康委员会", (Role.SUBSCRIBER,)),
            account("mzj-approver", "民政局审批岗", (Role.APPROVER,), department="mzj"),
            account("secadmin", "安全保密管理员", (Role.SECURITY_ADMIN,)),
            account("auditor", "安全审计员", (Role.AUDITOR,)),
        ]
        state = w.runtime.state
        for party, _ in accounts:
            state.put_party(party)
        # A 核心 variant of the sample: its requests need the security admin's yes too.
        core = Resource.model_validate(
            {
                **w.sample.resource.model_dump(),
                "code": "dibao-core",
                "name": "低保救助对象（核心）",
                "classification": "core",
            }
        )
        state.registry.register(core.subject, w.sample.schema_json)
        # ... with a second schema version that adds an optional field (BACKWARD compatible)
        schema_v2 = orjson.loads(w.sample.schema_json)
        schema_v2["fields"].append({"name": "remark", "type": ["null", "string"], "default": None})
        state.registry.register(core.subject, orjson.dumps(schema_v2).decode())
        state.put_resource(core)
        # A request waiting past its deadline, so the inbox shows it highlighted.
        late = now_ms() - 9 * DAY_MS
        state.put_subscription(
            Subscription(
                id="sub-late-request",
                resource="dibao",
                subscriber="chaowai",
                jurisdiction="110105002000",
                purpose="街道困难群众排查",
                status=SubscriptionStatus.CHECKED,
                requested_at_ms=late,
                check_due_ms=late + DAY_MS,
                answer_due_ms=late + 2 * DAY_MS,
                required_approvals=(ApprovalRole.OWNER,),
            )
        )
        yield w, {party.id: token for party, token in accounts}


def screenshots_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("GOVHUB_CONSOLE_SCREENSHOTS")
    out = Path(wanted) if wanted else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def sign_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/console/signin")
    page.fill("#token", token)
    page.click("#signin-submit")
    page.wait_for_url(f"{base}/console/catalogue")


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


class HeldStream:
    """A subscriber holding an SSE stream open on the gateway (a connected subscriber)."""

    def __init__(self, url: str, token: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        self._conn.request("GET", "/v1/stream/sse", headers={"Authorization": f"Bearer {token}"})
        self.response = self._conn.getresponse()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.response.readline():
                    return
            except (OSError, ValueError, AttributeError, http.client.HTTPException):
                return  # closed under the reader by close()

    def close(self) -> None:
        self._stop.set()
        self._conn.close()
        self._thread.join(5)


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_console_journey(world: tuple[HubWorld, dict[str, str]], tmp_path: Path) -> None:
    w, tokens = world
    base = w.runtime.api_url
    shots = screenshots_dir(tmp_path)
    rest = {pid: ApiClient(base, token) for pid, token in tokens.items()}
    state = w.runtime.state
    topics = state.topics
    audit = AuditView(w.bootstrap, topics)
    sources = {"dibao": topics.source("mzj", "dibao")}

    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            desk = {"viewport": DESKTOP, "locale": "zh-CN"}
            requester = browser.new_context(**desk).new_page()
            approver = browser.new_context(**desk).new_page()
            operator = browser.new_context(**desk).new_page()
            auditor = browser.new_context(**desk).new_page()
            # Script errors and Content-Security-Policy violations, on every page.
            broken: list[str] = []
            for page in (requester, approver, operator, auditor):
                page.on("pageerror", lambda exc: broken.append(str(exc)))
                page.on(
                    "console",
                    lambda msg: (
                        broken.append(msg.text) if "Content Security Policy" in msg.text else None
                    ),
                )

            # -- sign-in: a wrong token is refused in Chinese; the cookie is not the token
            requester.goto(f"{base}/console/catalogue")
            assert "/console/signin" in requester.url
            requester.fill("#token", "ghp_wjw.not-the-token")
            requester.click("#signin-submit")
            assert requester.text_content("#signin-error") == "令牌无效或已过期"
            requester.screenshot(path=str(shots / "signin.png"))
            requester.click("form.alt button")  # no client certificate on plain HTTP
            assert requester.text_content("#signin-error") == "本次连接未提供已登记的客户端证书"
            sign_in(requester, base, tokens["wjw"])
            cookies = requester.context.cookies()
            session = next(c for c in cookies if c["name"] == "govhub_session")
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            assert tokens["wjw"] not in session["value"]

            # -- catalogue: Chinese full-text search (as you type, through htmx), then detail
            requester.fill("#q", "不动产登记")
            # (selectors, not script: the console's CSP forbids evaluating strings)
            requester.wait_for_selector("#result-count:has-text('共 0 个资源')")
            assert "q=" in requester.url  # htmx pushed the search into the address bar
            requester.fill("#q", "低保 救助")
            requester.click("form.filters button[type=submit]")
            requester.wait_for_selector("li.resource[data-code=dibao]")
            assert "共 2 个资源" in (requester.text_content("#result-count") or "")
            # Filters apply as they change (htmx): 核心 only, then any classification again.
            requester.select_option("select[name=classification]", "core")
            requester.wait_for_selector("#result-count:has-text('共 1 个资源')")
            assert requester.locator("li.resource[data-code=dibao-core]").count() == 1
            requester.select_option("select[name=classification]", "")
            requester.wait_for_selector("#result-count:has-text('共 2 个资源')")
            requester.screenshot(path=str(shots / "catalogue.png"), full_page=True)
            assert no_horizontal_scroll(requester), "catalogue at 1366×768"
            requester.click("li.resource[data-code=dibao] h2 a")
            requester.wait_for_selector("#resource-name")
            assert requester.text_content("#share-attribute") == "有条件共享"
            assert requester.locator("#schema-versions tbody tr").count() == 1
            requester.goto(f"{base}/console/catalogue/dibao-core")
            versions = requester.locator("#schema-versions tbody tr")
            assert versions.count() == 2
            assert "兼容" in (versions.nth(1).text_content() or "")
            assert "BACKWARD" in (requester.text_content("#schema-versions thead") or "")
            requester.go_back()
            assert "身份证号" in (requester.text_content("#fields") or "")

            # -- request: server-side validation, errors next to the fields, in Chinese
            requester.fill("#jurisdiction", "11010500100X")
            requester.click("#request-submit")
            assert requester.text_content("#error-purpose") == "此项必填（至少 1 个字符）"
            assert requester.text_content("#error-jurisdiction") == "区划代码须为 12 位数字"
            requester.screenshot(path=str(shots / "request.png"), full_page=True)
            assert no_horizontal_scroll(requester), "request at 1366×768"
            # The REST API refuses the same input for the same reason.
            with pytest.raises(ApiError) as refused:
                rest["wjw"].call(
                    "POST",
                    "/v1/subscriptions",
                    {"resource": "dibao", "purpose": "x", "jurisdiction": "11010500100X"},
                )
            assert refused.value.status == 400 and "jurisdiction" in refused.value.message
            requester.fill("#jurisdiction", "110105001000")  # 建外街道, inside 朝阳区
            requester.fill("#purpose", "健康随访对象核对")
            requester.uncheck("#field-address")
            requester.click("#request-submit")
            requester.wait_for_url("**/console/requests?sent=*")
            assert "待审批" in (requester.text_content("#notice") or "")
            mine = rest["wjw"].call("GET", "/v1/subscriptions?scope=mine")["subscriptions"]
            (sub,) = [s for s in mine if s["resource"] == "dibao"]
            sid = sub["id"]
            assert sub["status"] == "checked" and "address" not in sub["fields"]
            assert sub["jurisdiction"] == "110105001000"

            # -- approvals inbox: deadlines, the overdue one highlighted; approve with masks
            sign_in(approver, base, tokens["mzj-approver"])
            approver.goto(f"{base}/console/approvals")
            card = approver.locator(f"#pending-{sid}")
            assert card.get_attribute("data-overdue") == "false"
            late = approver.locator("#pending-sub-late-request")
            assert late.get_attribute("data-overdue") == "true"
            assert "已超期" in (late.text_content() or "")
            # An empty rejection reason is refused next to the field, in Chinese.
            card.locator(".reject-form button").click()
            approver.wait_for_selector(f"#reject-{sid}-error-reason")
            assert approver.text_content(f"#reject-{sid}-error-reason") == (
                "此项必填（至少 1 个字符）"
            )
            card = approver.locator(f"#pending-{sid}")
            card.locator(f"#approve-{sid}-mask-name").select_option("name")
            card.locator(f"#approve-{sid}-mask-id_card").select_option("id_card")
            card.locator(f"#filters-{sid}").fill("household_size:ge:1")
            approver.screenshot(path=str(shots / "approvals.png"), full_page=True)
            assert no_horizontal_scroll(approver), "approvals at 1366×768"
            card.locator(".approve-form button.approve").click()
            approver.wait_for_url("**/console/approvals?done=*")
            assert "生效中" in (approver.text_content("#notice") or "")
            granted = rest["wjw"].call("GET", f"/v1/subscriptions/{sid}")
            assert granted["effective_status"] == "active"
            assert granted["masking"] == {"name": "name", "id_card": "id_card"}
            assert granted["fields"] == sub["fields"]  # as requested: no address
            assert granted["effective_masking"]["name"] == "name"
            (predicate,) = granted["filters"]
            assert (predicate["field"], predicate["op"], predicate["value"]) == (
                "household_size",
                "ge",
                1,
            )
            assert [e["actor"] for e in granted["history"]][-2] == "mzj-approver"
            # ... and rejects the overdue one, with its reason
            late = approver.locator("#pending-sub-late-request")
            late.locator(".reject-form textarea[name=reason]").fill("辖区内已有同类授权")
            late.locator(".reject-form button").click()
            approver.wait_for_url("**/console/approvals?done=sub-late-request")
            assert "已驳回" in (approver.text_content("#notice") or "")
            assert approver.locator("#pending-sub-late-request").count() == 0
            rejected = rest["mzj-approver"].call("GET", "/v1/subscriptions/sub-late-request")
            assert rejected["status"] == "rejected" and rejected["reason"] == "辖区内已有同类授权"

            # -- the requester sees the grant with its masking
            requester.goto(f"{base}/console/requests")
            mine_card = requester.locator(f"#sub-{sid}")
            assert mine_card.get_attribute("data-status") == "active"
            assert "name=name" in (mine_card.locator(".sub-masking").text_content() or "")
            requester.screenshot(path=str(shots / "requests.png"), full_page=True)

            # -- live flow: open before records flow; deliveries appear over SSE; a street
            # unit holds a stream on the gateway (a connected subscriber)
            held = HeldStream(w.runtime.gateway_url, w.members["jianwai"].token)
            assert held.response.status == 200
            sign_in(operator, base, tokens["secadmin"])
            operator.goto(f"{base}/console/live")
            time.sleep(1.5)  # the live reader starts tailing the audit topic from its end
            rows = generate_records(12, invalid=0)
            w.publish(rows)
            operator.wait_for_selector("#live-by-resource tr[data-key=dibao]", timeout=30_000)
            operator.wait_for_selector("#live-by-tier tr[data-key=department]", timeout=10_000)
            operator.wait_for_selector("#live-line[points*=',']", state="attached")
            operator.wait_for_selector("#live-subscribers tr[data-key=township]", timeout=10_000)
            assert w.runtime.gateway_url.rstrip("/") in (
                operator.text_content("#live-gateways") or ""
            )
            operator.screenshot(path=str(shots / "live.png"), full_page=True)
            assert no_horizontal_scroll(operator), "live at 1366×768"
            held.close()

            # -- audit: the auditor finds where record test:0 (a 建外街道 record) went
            jianwai_index = next(
                i for i, r in enumerate(rows) if r["region_code"].startswith("110105001")
            )
            record_id = f"test:{jianwai_index}"
            wait_for(
                lambda: audit.search(AuditQuery(subscriber="wjw"), sources).rows,
                30,
                "delivery rows for wjw",
            )
            sign_in(auditor, base, tokens["auditor"])
            auditor.goto(f"{base}/console/audit")
            auditor.fill("#audit-record-id", record_id)
            auditor.click("#audit-submit")
            auditor.wait_for_selector("#lineage")
            reached = auditor.locator("#lineage-reached .recipient")
            names = {reached.nth(i).get_attribute("data-recipient") for i in range(reached.count())}
            assert "wjw" in names and "rsj" in names and "jianwai" in names
            assert "chaowai" not in names  # another street's jurisdiction
            auditor.screenshot(path=str(shots / "audit.png"), full_page=True)
            assert no_horizontal_scroll(auditor), "audit at 1366×768"
            lineage = audit.lineage(record_id, sources)
            assert set(lineage.recipients) == names
            # The auditor REST API tells the same lineage.
            path = f"/v1/audit/lineage/{urllib.parse.quote(record_id, safe='')}"

            def rest_recipients() -> set[str]:
                answer = rest["auditor"].call("GET", path)
                return {d["recipient"] for d in answer["deliveries"]}

            assert wait_for(lambda: rest_recipients() == names, 30, "REST lineage")
            # Only the auditor may search the audit trail.
            requester.goto(f"{base}/console/audit")
            assert requester.locator("#forbidden").count() == 1

            # -- a POST without the form's CSRF token changes nothing; a forged cookie is no
            # session
            denied = requester.context.request.post(
                f"{base}/console/subscriptions/{sid}/revoke",
                form={"reason": "跨站请求"},
                max_redirects=0,
            )
            assert denied.status == 403 and "安全校验未通过" in denied.text()
            assert rest["wjw"].call("GET", f"/v1/subscriptions/{sid}")["status"] == "active"
            forged = browser.new_context(**desk)
            value = session["value"]
            forged.add_cookies([{"name": "govhub_session", "value": "A" + value[1:], "url": base}])
            forged_page = forged.new_page()
            forged_page.goto(f"{base}/console/catalogue")
            assert "/console/signin" in forged_page.url
            forged.close()

            # -- revoke: the security admin revokes; the page shows it effective
            operator.goto(f"{base}/console/subscriptions?by=resource")
            row = operator.locator(f"#grant-{sid}")
            assert row.get_attribute("data-status") == "active"
            row.locator("input[name=reason]").fill("健康随访任务已结束")
            row.locator("button").click()
            operator.wait_for_url("**/console/subscriptions?*revoked=*")
            assert operator.locator(f"#grant-{sid}").get_attribute("data-status") == "revoked"
            notice = operator.text_content("#notice") or ""
            assert "已撤销" in notice and "毫秒" in notice
            operator.screenshot(path=str(shots / "subscriptions.png"), full_page=True)
            assert no_horizontal_scroll(operator), "subscriptions at 1366×768"
            revoked = rest["secadmin"].call("GET", f"/v1/subscriptions/{sid}")
            assert revoked["status"] == "revoked" and revoked["reason"] == "健康随访任务已结束"
            revoked_at = revoked["history"][-1]["at_ms"]
            # Records published after the revocation reach the others, never wjw.
            w.publish(generate_records(12, seed=11, invalid=0), start=100)
            wait_for(
                lambda: any(
                    r.first_offset > lineage.source.offset  # type: ignore[union-attr]
                    for r in audit.search(AuditQuery(subscriber="rsj"), sources).rows
                    if r.at_ms > revoked_at
                ),
                30,
                "deliveries after the revocation",
            )
            late_rows = [
                r
                for r in audit.search(AuditQuery(subscriber="wjw"), sources).rows
                if r.at_ms > revoked_at
            ]
            assert late_rows == []

            # -- the security admin's queue: 核心 requests, approved in two steps
            core_request = {"resource": "dibao-core", "purpose": "重点人群核查"}
            core_sid = rest["wjw"].call("POST", "/v1/subscriptions", core_request)["id"]
            operator.goto(f"{base}/console/approvals")
            assert operator.locator(f"#security-queue #pending-{core_sid}").count() == 1
            operator.locator(f"#pending-{core_sid} .approve-form button.approve").click()
            operator.wait_for_url("**/console/approvals?done=*")
            halfway = rest["wjw"].call("GET", f"/v1/subscriptions/{core_sid}")
            assert halfway["status"] == "checked" and halfway["pending_approvals"] == ["owner"]
            approver.goto(f"{base}/console/approvals")
            assert approver.locator(f"#owner-queue #pending-{core_sid}").count() == 1

            # -- every page renders in English too, for each role that may open it
            for viewer, paths in (
                (operator, ["catalogue", "catalogue/dibao", "approvals", "subscriptions", "live"]),
                (approver, ["approvals", "subscriptions?by=subscriber&all=1", "live"]),
                (auditor, ["audit?subscriber=wjw", "subscriptions", "live"]),
            ):
                for path in paths:
                    sep = "&" if "?" in path else "?"
                    answer = viewer.goto(f"{base}/console/{path}{sep}lang=en")
                    assert answer is not None and answer.status == 200, path
                    assert viewer.get_attribute("html", "lang") == "en", path

            # -- English, and the phone layout
            requester.goto(f"{base}/console/catalogue?lang=en")
            assert requester.text_content("nav a[data-page=catalogue]") == "Catalogue"
            requester.goto(f"{base}/console/requests")
            assert requester.text_content("nav a[data-page=requests]") == "My requests"
            phone = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True)
            mobile = phone.new_page()
            sign_in(mobile, base, tokens["wjw"])
            assert no_horizontal_scroll(mobile)
            mobile.screenshot(path=str(shots / "phone-catalogue.png"), full_page=True)
            for path in ("/console/catalogue/dibao", "/console/requests"):
                mobile.goto(base + path)
                assert no_horizontal_scroll(mobile), path
            phone_admin = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True)
            mobile_admin = phone_admin.new_page()
            sign_in(mobile_admin, base, tokens["secadmin"])
            for path in ("/console/subscriptions?all=1", "/console/live", "/console/approvals"):
                mobile_admin.goto(base + path)
                assert no_horizontal_scroll(mobile_admin), path
            assert broken == []
        finally:
            browser.close()
    assert sorted(p.name for p in shots.glob("*.png")) == sorted(
        [
            "approvals.png",
            "audit.png",
            "catalogue.png",
            "live.png",
            "phone-catalogue.png",
            "request.png",
            "requests.png",
            "signin.png",
            "subscriptions.png",
        ]
    )
