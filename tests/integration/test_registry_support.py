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

from hub.config import isolated_config
from hub.runtime import HubRuntime

SR_JSON = "application/vnd.schemaregistry.v1+json"


@contextmanager
def api_hub(bootstrap: str, tmp: Path) -> Iterator[HubRuntime]:
    config = isolated_config(bootstrap, f"reg{uuid.uuid4().hex[:8]}.", tmp / "state")
    runtime = HubRuntime(config, roles=("api",))
    runtime.start()
    try:
        runtime.wait_ready()
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
) -> tuple[int, Any, str]:
    """(status, decoded JSON body, content type) of one request."""
    data = raw if raw is not None else (None if body is None else orjson.dumps(body))
    request = urllib.request.Request(base + path, data=data, method=method)
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
