"""The catalogue over REST and the CLI, on a real api backed by Kafka.

One hub (api role only) for the module; each test works on its own resources.
"""

from __future__ import annotations

import argparse
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from hub.catalogue import commands
from hub.catalogue.samples import load_sample
from hub.config import isolated_config
from hub.parties.model import Party, PartyKind, Role, hash_token, new_token
from hub.runtime import HubRuntime

pytestmark = pytest.mark.integration

DISTRICT = "110105000000"
DEPARTMENTS = ("mzj", "rsj", "gaj", "scjgj", "shzl")


@dataclass
class Api:
    runtime: HubRuntime
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.runtime.api_url

    def call(
        self, method: str, path: str, who: str | None, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if who is not None:
            request.add_header("Authorization", f"Bearer {self.tokens[who]}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())


def _party(pid: str, kind: PartyKind, roles: tuple[Role, ...], token: str) -> Party:
    return Party(
        id=pid,
        name=f"{pid} 测试",
        kind=kind,
        region_code=DISTRICT if kind is PartyKind.DEPARTMENT else "110105001001",
        token_hash=hash_token(token),
        roles=roles,
    )


@pytest.fixture(scope="module")
def api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    prefix = f"cat{uuid.uuid4().hex[:8]}."
    config = isolated_config(kafka_bootstrap, prefix, tmp_path_factory.mktemp("catalogue"))
    runtime = HubRuntime(config, roles=("api",))
    runtime.start()
    try:
        runtime.wait_ready()
        tokens = {name: new_token() for name in (*DEPARTMENTS, "community", "root")}
        publisher = (Role.PUBLISHER, Role.SUBSCRIBER)
        parties = [_party(d, PartyKind.DEPARTMENT, publisher, tokens[d]) for d in DEPARTMENTS]
        parties.append(_party("community", PartyKind.UNIT, (Role.SUBSCRIBER,), tokens["community"]))
        parties.append(_party("root", PartyKind.DEPARTMENT, (Role.SYSTEM_ADMIN,), tokens["root"]))
        for party in parties:
            runtime.state.put_party(party)
        yield Api(runtime, tokens)
    finally:
        runtime.stop()


def sample_body(name: str, **changes: Any) -> dict[str, Any]:
    sample = load_sample(name)
    return {
        "schema": sample.schema_json,
        "resource": {**sample.resource.model_dump(mode="json"), **changes},
    }


BASE = "/v1/catalog/resources"


def test_register_list_search_show_deprecate(api: Api) -> None:
    status, created = api.call("POST", BASE, "mzj", sample_body("mzj.dibao"))
    assert status == 201, created
    assert created["created"] and created["registered_by"] == "mzj"
    assert created["required_approvals"] == ["owner"] and created["subscribable"]
    assert created["topic"] == api.runtime.state.topics.source("mzj", "dibao")
    # Schema under the resource's subject, topics on the broker.
    latest = api.runtime.state.registry.version("govhub.src.mzj.dibao-value", "latest")
    assert created["schema"] == {"id": latest.schema_id, "version": 1}
    bootstrap = api.runtime.config.kafka.bootstrap_servers
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    assert created["topic"] in topics and api.runtime.state.topics.dlq("mzj") in topics
    # Registering again changes nothing.
    status, again = api.call("POST", BASE, "mzj", sample_body("mzj.dibao"))
    assert status == 200 and not again["created"]

    status, listing = api.call("GET", BASE + "?department=mzj", "community")
    assert status == 200 and [i["code"] for i in listing["items"]] == ["dibao"]
    query = urllib.parse.urlencode({"q": "低保救助", "tag": "身份证号", "classification": "重要"})
    status, found = api.call("GET", f"{BASE}?{query}", "rsj")
    assert status == 200 and found["items"][0]["code"] == "dibao" and found["items"][0]["score"] > 0
    status, shown = api.call("GET", BASE + "/dibao", "community")
    assert status == 200 and shown["fields"][0]["type"] == "string"

    status, refused = api.call("POST", BASE + "/dibao/deprecate", "rsj", {"reason": "x"})
    assert status == 403 and "rsj" in refused["error"]
    status, done = api.call(
        "POST", BASE + "/dibao/deprecate", "mzj", {"reason": "并入社会救助目录"}
    )
    assert status == 200 and done["status"] == "deprecated" and not done["subscribable"]
    assert (
        done["deprecation"]["by"] == "mzj" and "并入社会救助目录" in done["not_subscribable_reason"]
    )
    status, _ = api.call("POST", BASE + "/dibao/deprecate", "mzj", {"reason": "again"})
    assert status == 409
    status, listing = api.call("GET", BASE + "?status=deprecated&department=mzj", "mzj")
    assert [i["code"] for i in listing["items"]] == ["dibao"]


def test_departments_register_only_their_own_resources(api: Api) -> None:
    status, body = api.call("POST", BASE, "rsj", sample_body("gaj.huji"))
    assert status == 403 and "rsj may not register resources of department gaj" in body["error"]
    status, body = api.call("POST", BASE, "community", sample_body("gaj.huji"))
    assert status == 403 and "lacks the role" in body["error"]
    status, body = api.call("POST", BASE, None, sample_body("gaj.huji"))
    assert status == 401
    status, body = api.call("POST", BASE, "gaj", sample_body("gaj.huji"))
    assert status == 201 and body["required_approvals"] == ["owner", "security_admin"]
    # Another department cannot take the code over, not even with its own entry.
    taken = sample_body("rsj.shebao", code="huji", related=[])
    status, body = api.call("POST", BASE, "rsj", taken)
    assert status == 409 and "belongs to department gaj" in body["error"]
    # A system admin may register for any department.
    status, body = api.call("POST", BASE, "root", sample_body("scjgj.qiye"))
    assert status == 201 and body["registered_by"] == "root"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        ("POST", BASE, b"{not json", 400, "body must be JSON"),
        ("POST", BASE, b"[1, 2]", 400, "JSON object"),
        ("POST", BASE, b'{"resource": {}}', 400, "'schema'"),
        ("POST", BASE, "bad-schema", 422, "schema"),
        ("POST", BASE, "mismatch", 422, "have no catalogue entry"),
        ("POST", BASE, "not-shared-without-basis", 422, "needs share_basis"),
        ("GET", BASE + "?classification=secret", None, 400, "not a Classification"),
        ("GET", BASE + "?limit=abc", None, 400, "limit and offset must be integers"),
        ("GET", BASE + "?limit=0", None, 400, "limit must be"),
        ("GET", BASE + "/nope", None, 404, "'nope' is not in the catalogue"),
        ("POST", BASE + "/nope/deprecate", b'{"reason": "x"}', 404, "not in the catalogue"),
        ("POST", BASE + "/nope/deprecate", b"{}", 400, "reason"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    api: Api, method: str, path: str, body: Any, status: int, expected: str
) -> None:
    sample = sample_body("shzl.wangge")
    if body == "bad-schema":
        body = orjson.dumps({**sample, "schema": '{"type": "record", "name": "X"}'})
    elif body == "mismatch":
        schema = orjson.loads(sample["schema"])
        schema["fields"].append({"name": "extra", "type": "string"})
        body = orjson.dumps({**sample, "schema": schema})
    elif body == "not-shared-without-basis":
        body = orjson.dumps({**sample, "resource": {**sample["resource"], "share": "not_shared"}})
    got, answer = api.call(method, path, "shzl", raw=body)
    assert got == status, answer
    assert expected in answer["error"] + " ".join(answer.get("problems", []))


def cli(api: Api, who: str, *argv: str) -> argparse.Namespace:
    root = argparse.ArgumentParser(prog="govhub")
    commands.register(root.add_subparsers(dest="command", required=True))
    auth = ["--api-url", api.url, "--token", api.tokens[who]]
    return root.parse_args(["catalog", argv[0], *auth, *argv[1:]])


def run_cli(
    api: Api, capsys: pytest.CaptureFixture[str], who: str, *argv: str
) -> tuple[int, str, str]:
    args = cli(api, who, *argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_against_the_api(api: Api, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    schema = tmp_path / "wangge.avsc"
    meta = tmp_path / "wangge.json"
    sample = sample_body("shzl.wangge")
    schema.write_text(sample["schema"], encoding="utf-8")
    meta.write_bytes(orjson.dumps(sample["resource"]))
    code, out, err = run_cli(api, capsys, "shzl", "register", str(schema), str(meta))
    assert code == 0, err
    assert out.startswith("registered wangge") and "事发地点" in out and "地址" in out

    code, out, _ = run_cli(api, capsys, "rsj", "search", "网格 事件", "--json")
    assert code == 0 and orjson.loads(out)["items"][0]["code"] == "wangge"
    code, out, _ = run_cli(api, capsys, "rsj", "list", "--department", "shzl")
    assert (
        code == 0 and "wangge" in out and "网格事件" in out and out.rstrip().endswith("1 resources")
    )
    code, out, _ = run_cli(api, capsys, "rsj", "show", "wangge")
    assert code == 0 and "无条件共享" in out and "WG[0-9]{16}" in out

    code, out, err = run_cli(api, capsys, "rsj", "deprecate", "wangge", "--reason", "x")
    assert (
        code == 2 and out == "" and err.startswith("govhub: error: 403:") and err.count("\n") == 1
    )
    code, out, err = run_cli(
        api, capsys, "shzl", "deprecate", "wangge", "--reason", "改由城运中心提供"
    )
    assert code == 0 and out.strip() == "deprecated wangge: 改由城运中心提供"
    code, _, err = run_cli(api, capsys, "shzl", "show", "missing")
    assert code == 2 and err == "govhub: error: 404: resource 'missing' is not in the catalogue\n"


def test_metrics_count_registrations_and_resources(api: Api) -> None:
    status, _ = api.call("POST", BASE, "rsj", sample_body("rsj.shebao"))
    assert status == 201
    with urllib.request.urlopen(api.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'govhub_catalog_registrations_total{outcome="created"}' in text
    assert 'govhub_catalog_resources{classification="important",status="active"}' in text
