"""The api terminating TLS, with client certificates as an identity (mTLS)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from hub.config import isolated_config
from hub.parties.model import Party, PartyKind, Role
from hub.runtime import HubRuntime, StartupError
from tests.tls_files import certificates

pytestmark = pytest.mark.integration


def get(url: str, context: ssl.SSLContext | None) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")


@contextmanager
def tls_api(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[HubRuntime, dict[str, Path]]]:
    """An api role serving HTTPS with client certificates of the test CA, and the party
    ``jianwai`` known by its certificate subject."""
    files = certificates(tmp_path)
    config = isolated_config(
        kafka_bootstrap,
        f"tls{uuid.uuid4().hex[:8]}.",
        tmp_path / "state",
        **{
            "api.tls_cert_file": str(files["server_cert"]),
            "api.tls_key_file": str(files["server_key"]),
            "api.tls_client_ca_file": str(files["ca"]),
        },
    )
    runtime = HubRuntime(config, ("api",))
    runtime.start()
    try:
        runtime.wait_ready()
        runtime.state.put_party(
            Party(
                id="jianwai",
                name="建外街道",
                kind=PartyKind.UNIT,
                region_code="110105001000",
                roles=(Role.SUBSCRIBER,),
                mtls_subject="CN=jianwai,O=GovHub",
            )
        )
        yield runtime, files
    finally:
        runtime.stop()


def test_api_over_tls_knows_a_party_by_its_client_certificate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with tls_api(kafka_bootstrap, tmp_path) as (runtime, files):
        assert runtime.api_url.startswith("https://")
        trusting = ssl.create_default_context(cafile=str(files["ca"]))
        with_cert = ssl.create_default_context(cafile=str(files["ca"]))
        with_cert.load_cert_chain(files["client_cert"], files["client_key"])
        url = f"{runtime.api_url}/v1/parties/jianwai"
        status, body = get(url, with_cert)
        assert status == 200 and body["id"] == "jianwai"
        status, _ = get(url, trusting)  # TLS, but neither certificate nor token
        assert status == 401
        assert get(f"{runtime.api_url}/healthz", trusting)[0] == 200
        with pytest.raises(urllib.error.URLError):  # a client that does not trust the CA
            get(url, ssl.create_default_context())
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP
            get(url.replace("https://", "http://"), None)


def test_unusable_tls_files_stop_the_api_at_start(kafka_bootstrap: str, tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    config = isolated_config(
        kafka_bootstrap,
        f"tls{uuid.uuid4().hex[:8]}.",
        tmp_path / "state",
        **{
            "api.tls_cert_file": str(tmp_path / "cert.pem"),
            "api.tls_key_file": str(tmp_path / "cert.pem"),
        },
    )
    runtime = HubRuntime(config, ("api",))
    try:
        with pytest.raises(StartupError, match="cannot be used"):
            runtime.start()
            runtime.wait_ready()
    finally:
        runtime.stop()


def test_console_signs_in_by_client_certificate(kafka_bootstrap: str, tmp_path: Path) -> None:
    import asyncio
    import re

    import aiohttp

    with tls_api(kafka_bootstrap, tmp_path) as (runtime, files):

        async def sign_in(context: ssl.SSLContext) -> tuple[int, str, bool]:
            jar = aiohttp.CookieJar(unsafe=True)
            connector = aiohttp.TCPConnector(ssl=context)
            async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
                async with http.get(f"{runtime.api_url}/console/signin") as page:
                    html = await page.text()
                found = re.search(r'name="nonce" value="([^"]+)"', html)
                assert found, html[:500]
                async with http.post(
                    f"{runtime.api_url}/console/signin/certificate",
                    data={"nonce": found.group(1)},
                    allow_redirects=False,
                ) as answer:
                    body = await answer.text()
                    signed = any(c.key == "govhub_session" for c in jar)
                    return answer.status, body, signed

        with_cert = ssl.create_default_context(cafile=str(files["ca"]))
        with_cert.load_cert_chain(files["client_cert"], files["client_key"])
        status, _, signed = asyncio.run(sign_in(with_cert))
        assert status == 303 and signed
        status, _, signed = asyncio.run(
            sign_in(ssl.create_default_context(cafile=str(files["ca"])))
        )
        assert status == 401 and not signed
