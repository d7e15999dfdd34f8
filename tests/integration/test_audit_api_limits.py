"""The api's limits on a real hub: per-party rate limit and failed sign-ins per address
(429 with Retry-After), the request size limit (413), failed sign-ins audited without the
token, and hostile queries to the auditor endpoints (never a 5xx)."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.api.app import build_app
from hub.api.security import LIMITS_KEY, ApiLimits, RateLimiter
from hub.audit.query import rows_of
from hub.audit.store import read_topic
from hub.parties.model import Party, PartyKind, Role, hash_token, new_token
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration


def _serve(world: HubWorld, limits: ApiLimits) -> Iterator[str]:
    app = build_app(world.runtime.state, world.runtime.kms)
    app[LIMITS_KEY] = limits
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        started.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubWorld, str, str]]:
    with hub_world(kafka_bootstrap, tmp_path_factory.mktemp("limits"), roles=("api",)) as world:
        token = new_token("auditor-2")
        world.runtime.state.put_party(
            Party(
                id="auditor-2",
                name="审计员",
                kind=PartyKind.DEPARTMENT,
                region_code="110105000000",
                roles=(Role.AUDITOR,),
                token_hash=hash_token(token),
            )
        )
        limits = ApiLimits(RateLimiter(2.0, 5), RateLimiter(0.5, 3))
        AUDITOR_HEADROOM.append(limits)
        for url in _serve(world, limits):
            yield world, url, token


def call(
    url: str, token: str | None, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_party_rate_limit_answers_429_with_retry_after(api: tuple[HubWorld, str, str]) -> None:
    world, url, _ = api
    rsj = world.members["rsj"].token
    statuses = [call(url + "/v1/subscriptions", rsj)[0] for _ in range(8)]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    status, headers, body = call(url + "/v1/subscriptions", rsj)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert "over its request rate" in orjson.loads(body)["error"]
    # Another party is not affected.
    assert call(url + "/v1/subscriptions", world.members["jianwai"].token)[0] == 200
    time.sleep(1.1)
    assert call(url + "/v1/subscriptions", rsj)[0] == 200


def test_failed_sign_ins_are_limited_and_audited_without_the_token(
    api: tuple[HubWorld, str, str],
) -> None:
    world, url, _ = api
    secret = "ghp_jianwai.guessed-secret-xyz"
    statuses = [call(url + "/v1/subscriptions", secret)[0] for _ in range(5)]
    assert statuses[:3] == [401] * 3 and statuses[3:] == [429, 429]
    # The right token from the same address waits too: the address is limited, not the party.
    status, _headers, _ = call(url + "/v1/subscriptions", world.members["jianwai"].token)
    assert status in (200, 429)
    deadline = time.monotonic() + 30
    failed: list[dict[str, object]] = []
    topics = world.runtime.state.topics
    while time.monotonic() < deadline and len(failed) < 3:
        failed = []
        for p, o, value in read_topic(world.bootstrap, topics.audit):
            assert b"guessed-secret" not in (value or b"")
            failed += [r.to_json() for r in rows_of(p, o, value) if r.action == "sign-in.failed"]
        time.sleep(0.3)
    assert len(failed) >= 3 and {f["actor"] for f in failed} == {"jianwai"}


def test_request_size_limit_is_413(api: tuple[HubWorld, str, str]) -> None:
    world, url, _ = api
    limits_off(api)
    body = b'{"key_id": "' + b"a" * (5 * 2**20) + b'", "subscription": "x"}'
    status, _, answer = call(url + "/v1/keys/release", world.members["chaowai"].token, "POST", body)
    assert status == 413, answer[:200]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["recipient", "resource", "record_id", "from", "to", "kind", "offset", "limit", "x"]
        ),
        st.text(max_size=30),
        max_size=5,
    ),
    record_id=st.text(min_size=1, max_size=40),
)
def test_hostile_auditor_queries_never_5xx(
    api: tuple[HubWorld, str, str], params: dict[str, str], record_id: str
) -> None:
    _, url, token = api
    limits_off(api)
    query = urllib.parse.urlencode(params)
    for path in (
        f"/v1/audit/events?{query}",
        f"/v1/audit/export.csv?{query}",
        "/v1/audit/lineage/" + urllib.parse.quote(record_id, safe=""),
    ):
        status, _, body = call(url + path, token)
        assert status < 500, (path, status, body[:200])
        assert status in (200, 400, 404), (path, status, body[:200])


AUDITOR_HEADROOM: list[ApiLimits] = []


def limits_off(api: tuple[HubWorld, str, str]) -> None:
    """The hostile-query test is about answers, not rates: refill the auditor's bucket."""
    AUDITOR_HEADROOM[-1].party._buckets.pop("auditor-2", None)
    AUDITOR_HEADROOM[-1].failed_sign_ins._buckets.clear()
