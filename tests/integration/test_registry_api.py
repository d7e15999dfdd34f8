"""The registry's REST surface as a Confluent client sees it: answers, content types,
error codes, and no 500 for bad input."""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integration.test_registry_support import SR_JSON, api_hub, call, record

V1 = record(id="string")
V2 = record(id="string", age={"type": "int", "default": 0})
REQUIRED_AGE = record(id="string", age="int")


@pytest.fixture(scope="module")
def base(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_hub(kafka_bootstrap, tmp_path_factory.mktemp("registry-api")) as runtime:
        yield runtime.api_url + "/registry"


def test_register_look_up_and_read_back(base: str) -> None:
    assert call(base, "GET", "")[:2] == (200, {})
    assert call(base, "GET", "/schemas/types")[:2] == (200, ["AVRO"])
    status, first, ctype = call(base, "POST", "/subjects/people-value/versions", {"schema": V1})
    assert status == 200 and ctype.startswith(SR_JSON)
    again = call(
        base,
        "POST",
        "/subjects/people-value/versions",
        {"schema": V1},
        content_type="application/json",
    )
    assert again[:2] == (200, first)
    second = call(
        base,
        "POST",
        "/subjects/people-value/versions",
        {"schema": V2, "schemaType": "AVRO", "references": []},
    )[1]
    assert call(base, "GET", "/subjects")[1] == ["people-value"]
    assert call(base, "GET", "/subjects/people-value/versions")[1] == [1, 2]
    latest = call(base, "GET", "/subjects/people-value/versions/latest")[1]
    assert latest == {
        "subject": "people-value",
        "version": 2,
        "id": second["id"],
        "schema": call(base, "GET", f"/schemas/ids/{second['id']}")[1]["schema"],
    }
    assert orjson.loads(latest["schema"]) == orjson.loads(V2)
    assert call(base, "GET", "/subjects/people-value/versions/1/schema")[1] == orjson.loads(V1)
    found = call(
        base,
        "POST",
        "/subjects/people-value",
        {"schema": V1},
        content_type="application/vnd.schemaregistry+json",
    )
    assert found[0] == 200 and (found[1]["version"], found[1]["id"]) == (1, first["id"])
    assert call(base, "GET", f"/schemas/ids/{first['id']}/versions")[1] == [
        {"subject": "people-value", "version": 1}
    ]
    assert call(base, "GET", f"/schemas/ids/{first['id']}/subjects")[1] == ["people-value"]


def test_soft_then_permanent_deletes(base: str) -> None:
    for schema in (V1, V2):
        call(base, "POST", "/subjects/gone-value/versions", {"schema": schema})
    assert (
        call(base, "DELETE", "/subjects/gone-value/versions/1?permanent=true")[1]["error_code"]
        == 40407
    )
    assert call(base, "DELETE", "/subjects/gone-value/versions/1")[:2] == (200, 1)
    assert call(base, "DELETE", "/subjects/gone-value/versions/1")[1]["error_code"] == 40406
    assert call(base, "GET", "/subjects/gone-value/versions/1")[1]["error_code"] == 40402
    assert call(base, "GET", "/subjects/gone-value/versions/1?deleted=true")[1]["version"] == 1
    assert call(base, "DELETE", "/subjects/gone-value?permanent=true")[1]["error_code"] == 40405
    assert call(base, "DELETE", "/subjects/gone-value")[:2] == (200, [2])
    assert call(base, "DELETE", "/subjects/gone-value")[1]["error_code"] == 40404
    assert "gone-value" not in call(base, "GET", "/subjects")[1]
    assert "gone-value" in call(base, "GET", "/subjects?deleted=true")[1]
    assert call(base, "DELETE", "/subjects/gone-value?permanent=true")[:2] == (200, [1, 2])
    assert "gone-value" not in call(base, "GET", "/subjects?deleted=true")[1]
    assert call(base, "GET", "/subjects/gone-value/versions")[1]["error_code"] == 40401


def test_config_and_compatibility(base: str) -> None:
    subject = "/subjects/evolving-value"
    call(base, "POST", subject + "/versions", {"schema": V1})
    assert call(base, "GET", "/config")[1] == {"compatibilityLevel": "BACKWARD"}
    assert call(base, "GET", "/config/evolving-value")[1]["error_code"] == 40408
    assert call(base, "GET", "/config/evolving-value?defaultToGlobal=true")[1] == {
        "compatibilityLevel": "BACKWARD"
    }
    refused = call(base, "POST", subject + "/versions", {"schema": REQUIRED_AGE})
    assert refused[0] == 409 and refused[1]["error_code"] == 409 and "age" in refused[1]["message"]
    check = "/compatibility" + subject + "/versions/latest"
    assert call(base, "POST", check, {"schema": REQUIRED_AGE})[1] == {"is_compatible": False}
    verbose = call(base, "POST", check + "?verbose=true", {"schema": REQUIRED_AGE})[1]
    assert verbose["is_compatible"] is False and verbose["messages"]
    assert call(base, "POST", "/compatibility" + subject + "/versions/1", {"schema": V2})[1] == {
        "is_compatible": True
    }
    assert call(base, "PUT", "/config/evolving-value", {"compatibility": "FORWARD"})[:2] == (
        200,
        {"compatibility": "FORWARD"},
    )
    assert call(base, "GET", "/config/evolving-value")[1] == {"compatibilityLevel": "FORWARD"}
    assert call(base, "POST", subject + "/versions", {"schema": REQUIRED_AGE})[0] == 200
    assert (
        call(base, "PUT", "/config/evolving-value", {"compatibility": "SOMETIMES"})[1]["error_code"]
        == 42203
    )
    assert call(base, "DELETE", "/config/evolving-value")[1] == {"compatibilityLevel": "FORWARD"}
    assert call(base, "PUT", "/config", {"compatibility": "full"})[1] == {"compatibility": "FULL"}
    assert call(base, "GET", "/config")[1] == {"compatibilityLevel": "FULL"}
    assert call(base, "DELETE", "/config")[1] == {"compatibilityLevel": "FULL"}


def huge() -> bytes:
    return orjson.dumps({"schema": record(**{f"f{i}": "string" for i in range(20_000)})})


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/subjects/bad/versions", {"raw": b'{"schema": '}, 400, 400),
        ("POST", "/subjects/bad/versions", {"body": {"schema": "{not avro"}}, 422, 42201),
        (
            "POST",
            "/subjects/bad/versions",
            {"body": {"schema": '{"type":"record","name":"R"}'}},
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/bad/versions",
            {"body": {"schema": '"string"', "schemaType": "JSON"}},
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/bad/versions",
            {"body": {"schema": V1, "references": [{"name": "x", "subject": "y", "version": 1}]}},
            422,
            42201,
        ),
        ("POST", "/subjects/bad/versions", {"body": {"schema": V1, "id": 7}}, 422, 42205),
        ("POST", "/subjects/bad/versions", {"body": {"no": "schema"}}, 422, 42201),
        ("POST", "/subjects/bad/versions", {"body": ["a", "list"]}, 422, 42201),
        ("POST", "/subjects/bad/versions", {"raw": huge()}, 413, 413),
        (
            "POST",
            "/subjects/bad/versions",
            {"body": {"schema": V1}, "content_type": "text/plain"},
            415,
            415,
        ),
        ("POST", "/subjects/unknown-subject", {"body": {"schema": V1}}, 404, 40401),
        ("GET", "/subjects/unknown-subject/versions", {}, 404, 40401),
        ("GET", "/subjects/unknown-subject/versions/latest", {}, 404, 40401),
        ("GET", "/subjects/unknown-subject/versions/zero", {}, 422, 42202),
        ("GET", "/schemas/ids/1", {}, 404, 40403),
        ("GET", "/schemas/ids/not-a-number", {}, 404, 40403),
        ("PUT", "/config", {"raw": b"[1,"}, 400, 400),
        ("PUT", "/config", {"body": {"compatibility": 3}}, 422, 42203),
        ("GET", "/no/such/path", {}, 404, 404),
        ("PUT", "/subjects", {"body": {}}, 405, 405),
    ],
)
def test_bad_input_gets_a_confluent_error(
    base: str, method: str, path: str, kwargs: dict[str, object], status: int, code: int
) -> None:
    got_status, body, ctype = call(base, method, path, **kwargs)  # type: ignore[arg-type]
    assert (got_status, body["error_code"]) == (status, code), body
    assert isinstance(body["message"], str) and body["message"]
    assert ctype.startswith(SR_JSON)


def test_lookup_of_an_unregistered_schema_is_40403(base: str) -> None:
    call(base, "POST", "/subjects/lookup-value/versions", {"schema": V1})
    assert call(base, "POST", "/subjects/lookup-value", {"schema": V2})[1]["error_code"] == 40403


def test_legacy_root_path_still_serves_schemas_by_id(base: str) -> None:
    schema_id = call(base, "POST", "/subjects/legacy-value/versions", {"schema": V1})[1]["id"]
    root = base.removesuffix("/registry")
    assert (
        call(root, "GET", f"/schemas/ids/{schema_id}")[1]
        == call(base, "GET", f"/schemas/ids/{schema_id}")[1]
    )


def test_metrics_count_registrations(base: str) -> None:
    call(base, "POST", "/subjects/metrics-value/versions", {"schema": V1})
    call(base, "POST", "/subjects/metrics-value/versions", {"schema": REQUIRED_AGE})
    root = base.removesuffix("/registry")
    with urllib.request.urlopen(root + "/metrics", timeout=10) as response:
        text = response.read().decode()
    for name in (
        'govhub_registry_registrations_total{outcome="new-version"}',
        'govhub_registry_compatibility_checks_total{result="incompatible"}',
        "govhub_registry_schemas ",
        "govhub_registry_subjects ",
    ):
        assert name in text, name


# -- fuzzing: whatever arrives, a 2xx or a Confluent-shaped 4xx --------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
schema_bodies = st.fixed_dictionaries(
    {
        "schema": st.one_of(
            st.text(max_size=30), json_values.map(lambda v: orjson.dumps(v).decode())
        )
    },
    optional={"schemaType": json_values, "references": json_values, "version": json_values},
)
bodies = st.one_of(
    st.binary(max_size=40), json_values.map(orjson.dumps), schema_bodies.map(orjson.dumps)
)
segments = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=16
).map(lambda s: urllib.parse.quote(s, safe=""))
requests = st.one_of(
    st.tuples(
        st.just("POST"),
        st.sampled_from(
            ["/subjects/{s}/versions", "/subjects/{s}", "/compatibility/subjects/{s}/versions/{v}"]
        ),
    ),
    st.tuples(st.just("PUT"), st.sampled_from(["/config", "/config/{s}"])),
    st.tuples(
        st.sampled_from(["GET", "DELETE"]),
        st.sampled_from(
            [
                "/subjects/{s}/versions/{v}",
                "/subjects/{s}",
                "/config/{s}",
                "/schemas/ids/{v}/versions",
            ]
        ),
    ),
)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(request=requests, subject=segments, version=segments, body=bodies)
def test_fuzzed_requests_never_get_a_server_error(
    base: str, request: tuple[str, str], subject: str, version: str, body: bytes
) -> None:
    method, template = request
    path = template.replace("{s}", subject).replace("{v}", version)
    data = body if method in ("POST", "PUT") else None
    status, answer, _ = call(base, method, path, raw=data)
    assert status < 500, (method, path, body, answer)
    if status >= 400:
        assert isinstance(answer["error_code"], int) and answer["message"]
