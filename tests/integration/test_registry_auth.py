"""Who may read and change the registry: any party reads, writers need the role."""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Iterator

import pytest

from hub.parties.model import Party, PartyKind, Role, hash_token, new_token
from hub.runtime import HubRuntime
from tests.integration.test_registry_support import api_hub, call, record

pytestmark = pytest.mark.integration

SCHEMA = record(id="string")


@pytest.fixture(scope="module")
def hub(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubRuntime]:
    with api_hub(kafka_bootstrap, tmp_path_factory.mktemp("registry-auth")) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def publisher(hub: HubRuntime) -> str:
    token = new_token("mzj")
    party = Party(
        id="mzj",
        name="区民政局",
        kind=PartyKind.DEPARTMENT,
        region_code="110105000000",
        roles=(Role.PUBLISHER,),
        token_hash=hash_token(token),
    )
    hub.state.put_party(party)
    return token


def test_reads_need_a_party(hub: HubRuntime) -> None:
    base = hub.api_url + "/registry"
    status, body, _ = call(base, "GET", "/subjects", token=None)
    assert status == 401 and body["error_code"] == 40101
    status, body, _ = call(base, "GET", "/subjects", token="ghp_nobody.wrong")
    assert status == 401 and body["error_code"] == 40101


def test_publishers_write_only_their_department_subjects(hub: HubRuntime, publisher: str) -> None:
    base = hub.api_url + "/registry"
    own = "/subjects/govhub.src.mzj.dibao2-value/versions"
    status, body, _ = call(base, "POST", own, {"schema": SCHEMA}, token=publisher)
    assert status == 200 and isinstance(body["id"], int)
    other = "/subjects/govhub.src.rsj.shebao2-value/versions"
    status, body, _ = call(base, "POST", other, {"schema": SCHEMA}, token=publisher)
    assert status == 403 and body["error_code"] == 40301
    status, body, _ = call(base, "PUT", "/config", {"compatibility": "NONE"}, token=publisher)
    assert status == 403 and body["error_code"] == 40301
    # Reads and lookups are fine for any party.
    assert call(base, "GET", "/subjects", token=publisher)[0] == 200


def test_basic_auth_as_stock_clients_send_it(hub: HubRuntime, publisher: str) -> None:
    base = hub.api_url + "/registry"
    basic = base64.b64encode(f"mzj:{publisher}".encode()).decode()
    request = urllib.request.Request(
        base + "/subjects", headers={"Authorization": f"Basic {basic}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
