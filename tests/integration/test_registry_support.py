"""Support for the registry tests (no tests here): an api-only hub on the test broker
and a small HTTP helper."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from hub.config import HubConfig, isolated_config
from hub.parties.bootstrap import bootstrap_admin
from hub.runtime import HubRuntime

SR_JSON = "application/vnd.schemaregistry.v1+json"


ADMIN = "registry-admin"
# The token of the system admin every test hub gets (set by provision_admin).
TOKENS: dict[str, str] = {}


def provision_admin(config: HubConfig) -> str:
    """Create the hub's first system admin; its token is used by :func:`call`."""
    _, token = bootstrap_admin(config, ADMIN, "注册中心管理员", "110000000000", 30)
    TOKENS[ADMIN] = token
    return token


def basic_auth(token: str) -> str:
    return f"{ADMIN}:{token}"


@contextmanager
def api_hub(bootstrap: str, tmp: Path) -> Iterator[HubRuntime]:
    config = isolated_config(bootstrap, f"reg{uuid.uuid4().hex[:8]}.", tmp / "state")
    runtime = HubRuntime(config, roles=("api",))
    runtime.start()
    try:
        runtime.wait_ready()
        provision_admin(config)
        runtime.state.parties.wait_for(lambda t: t.get(ADMIN) is not None)
        yield runtime
    finally:
        runtime.stop()


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str | None = SR_JSON,
    token: str | None = "admin",
) -> tuple[int, Any, str]:
    """(status, decoded JSON body, content type) of one request, as the hub's admin unless
    ``token`` is another token or None (no credentials)."""
    data = raw if raw is not None else (None if body is None else orjson.dumps(body))
    request = urllib.request.Request(base + path, data=data, method=method)
    if token is not None:
        request.add_header(
            "Authorization", f"Bearer {TOKENS[ADMIN] if token == 'admin' else token}"
        )
    if data is not None and content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload, ctype = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, payload, ctype = exc.code, exc.read(), exc.headers
    return status, orjson.loads(payload) if payload else None, ctype.get("Content-Type", "")


def record(record_name: str = "Person", /, **fields: object) -> str:
    """A record schema; each keyword is a field name and its Avro type (or a dict field)."""
    spec = [
        dict(value, name=key) if isinstance(value, dict) else {"name": key, "type": value}
        for key, value in fields.items()
    ]
    return orjson.dumps({"type": "record", "name": record_name, "fields": spec}).decode()
