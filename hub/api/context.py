"""What every api route module shares: app keys, JSON responses, blocking calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from hub.crypto.kms import Kms
from hub.state import ControlState

STATE_KEY: web.AppKey[ControlState] = web.AppKey("state", ControlState)
KMS_KEY: web.AppKey[Kms] = web.AppKey("kms", object)  # type: ignore[arg-type]
READY_KEY: web.AppKey[Callable[[], list[str]]] = web.AppKey("ready", object)  # type: ignore[arg-type]

T = TypeVar("T")


def json_response(
    data: Any, status: int = 200, content_type: str = "application/json"
) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=content_type)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Blocking work (slow hashes, Kafka round trips) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
