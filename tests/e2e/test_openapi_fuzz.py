"""schemathesis against ``/openapi.json`` of an in-process api: whatever it sends, the api
answers with a 2xx or a 4xx — never a 5xx (bounded examples per operation)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from hub.apiclient import ApiClient  # noqa: E402
from hub.catalogue.samples import load_sample  # noqa: E402
from hub.config import isolated_config  # noqa: E402
from hub.parties.bootstrap import bootstrap_admin  # noqa: E402
from hub.runtime import HubRuntime  # noqa: E402

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 15


@dataclass(frozen=True)
class FuzzTarget:
    url: str
    admin_token: str
    department_token: str
    party_id: str
    subscription_ids: tuple[str, ...]
    auditor_token: str = ""

    def token_for(self, path: str) -> str:
        if path.startswith("/v1/audit"):
            return self.auditor_token
        return self.department_token if path.startswith("/v1/subscriptions") else self.admin_token

    def anchor(self, case: Any, choice: int) -> Any:
        """Point some cases at objects that exist, so handlers get past the lookups."""
        if choice % 2:
            return case
        params = case.path_parameters or {}
        if "id" in params:
            if case.path.startswith("/v1/parties"):
                params["id"] = self.party_id
            else:
                params["id"] = self.subscription_ids[choice // 2 % len(self.subscription_ids)]
        body = case.body
        if isinstance(body, dict):
            if "resource" in body:
                body["resource"] = "dibao"
            if "region_code" in body:
                body["region_code"] = "110105001001"
        return case


@pytest.fixture(scope="module")
def fuzz_target(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    config = isolated_config(kafka_bootstrap, f"fz{uuid.uuid4().hex[:8]}.", tmp / "state")
    _, admin_token = bootstrap_admin(config, "sysadmin", "系统管理员", "110105000000", 30)
    runtime = HubRuntime(config, roles=("api",))
    runtime.start()
    try:
        runtime.wait_ready()
        sample = load_sample("mzj.dibao")
        runtime.state.registry.register(sample.resource.subject, sample.schema_json)
        runtime.state.put_resource(sample.resource)
        admin = ApiClient(runtime.api_url, admin_token)
        department = admin.call(
            "POST",
            "/v1/parties",
            {
                "id": "mzj",
                "name": "民政局",
                "kind": "department",
                "region_code": "110105000000",
                "roles": ["publisher", "subscriber", "approver"],
            },
        )
        admin.call(
            "POST",
            "/v1/parties",
            {"id": "victim", "name": "试验", "kind": "unit", "region_code": "110105001000"},
        )
        mzj = ApiClient(runtime.api_url, department["token"])
        requests = [
            {"resource": "dibao", "purpose": "fuzz", "jurisdiction": code}
            for code in ("110105001000", "110105002000", "110105003000")
        ]
        ids = tuple(mzj.call("POST", "/v1/subscriptions", body)["id"] for body in requests)
        mzj.call("POST", f"/v1/subscriptions/{ids[0]}/approve", {})
        auditor = admin.call(
            "POST",
            "/v1/parties",
            {
                "id": "auditor",
                "name": "审计员",
                "kind": "department",
                "region_code": "110105000000",
                "roles": ["auditor"],
            },
        )
        yield FuzzTarget(
            runtime.api_url, admin_token, department["token"], "victim", ids, auditor["token"]
        )
    finally:
        runtime.stop()


def _fuzz(operation: Any, mode: GenerationMode, target: FuzzTarget) -> list[str]:
    """Run one operation's examples; return the failures (as text) instead of raising, so
    every operation is exercised even when one fails."""
    failures: list[str] = []
    token = target.token_for(operation.path)

    cases = st.tuples(operation.as_strategy(generation_mode=mode), st.integers(0, 7))

    @given(anchored=cases.map(lambda pair: target.anchor(*pair)))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(anchored: Any) -> None:
        case = anchored
        try:
            case.call_and_validate(
                base_url=target.url,
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error],
                timeout=30,
            )
        except AssertionError as exc:  # schemathesis reports failed checks this way
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")

    # Unsatisfiable: nothing to vary (no negative input for an operation without input).
    with contextlib.suppress(Unsatisfiable):
        run()
    return failures


def test_no_server_errors(fuzz_target: FuzzTarget) -> None:
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, fuzz_target)
    assert operations >= 15
    assert not failures, "\n".join(dict.fromkeys(failures))


def test_audit_endpoints_no_server_errors(fuzz_target: FuzzTarget) -> None:
    """The auditor's endpoints (their OpenAPI paths from ``hub.audit.api``), as an auditor."""
    from hub.api.openapi import build_document
    from hub.audit import api as audit_api

    schema = schemathesis.openapi.from_dict(build_document(modules=[audit_api]))
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1/audit"):
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, fuzz_target)
    assert operations == 4
    assert not failures, "\n".join(dict.fromkeys(failures))
