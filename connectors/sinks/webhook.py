"""A webhook sink: each batch is POSTed as JSON to the subscriber's own system.

Delivery rules, so nothing is dropped silently:

- 2xx: delivered.
- 429, or 503 with ``Retry-After``: the receiver is busy. The sink raises
  ``Backpressure`` and the SDK retries the same batch after the delay; busy is not failure.
- 5xx, 408, time-outs, refused or reset connections: retried with exponential backoff and
  jitter, up to ``max_attempts``; then the batch goes to the dead-letter folder.
- other 4xx (400, 413, 422, ...): the receiver refuses the content; retrying cannot help,
  so the batch goes to the dead-letter folder at once.
- 401, 403, 404, 405, 410 and redirects: the sink is misconfigured (token, URL). The write
  fails with ``WebhookConfigError``; nothing is acknowledged, and after the fix the same
  records are delivered.

The cursor (``<state_dir>/cursor.json``) advances only after every part of the batch was
either accepted or written (fsync'd) to the dead-letter folder. A crash between the POST
and the cursor write sends that batch again: the receiver deduplicates by ``record_id``
(stable per record version), and each POST carries an ``Idempotency-Key``.
"""

from __future__ import annotations

import datetime
import http.client
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.base import Backpressure
from connectors.sinks.base import Cursor, DeliveredRecord, Sink, dumps
from connectors.sinks.state import CursorFile, cursor_doc, cursor_from_doc, fsync_dir

log = logging.getLogger(__name__)

_CONFIG_STATUSES = frozenset({401, 403, 404, 405, 410})
_RETRY_4XX = frozenset({408, 425, 429})


class WebhookSinkConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://", description="where batches are POSTed")
    state_dir: Path = Field(description="holds cursor.json and, by default, dead-letter/")
    dead_letter_dir: Path | None = Field(
        default=None, description="batches that keep failing; default <state_dir>/dead-letter"
    )
    auth_token: SecretStr | None = Field(default=None, description="sent as a Bearer token")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    max_records_per_post: int = Field(default=500, ge=1, le=100_000)


class WebhookConfigError(RuntimeError):
    """The receiver says the sink is misconfigured (auth, URL); fix the config."""


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: between half and all of ``initial * 2**(attempt-1)``."""
    ceiling: float = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rng.random() * ceiling / 2


@dataclass(frozen=True, slots=True)
class PostResult:
    ok: bool
    status: int | None  # None: no HTTP answer (connection, time-out)
    detail: str
    retry_after: float | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a moved webhook is a configuration error, not something to follow


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = datetime.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT")
    except ValueError:
        return None
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return max(0.0, (when - now).total_seconds())


class WebhookSink(Sink):
    def __init__(self, config: WebhookSinkConfig, rng: random.Random | None = None) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.dead_letter_dir = config.dead_letter_dir or config.state_dir / "dead-letter"
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        self._state = CursorFile(config.state_dir / "cursor.json")
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._rng = rng or random.Random()
        self._done_parts: tuple[tuple[int, int], int] | None = None  # (cursor, parts sent)
        self.posts = 0
        self.dead_lettered = 0

    @classmethod
    def from_config(cls, name: str, config: WebhookSinkConfig) -> WebhookSink:
        return cls(config)

    def load_cursor(self) -> Cursor | None:
        doc = self._state.read()
        return None if doc is None else cursor_from_doc(doc, self._state.path)

    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        size = self.config.max_records_per_post
        parts = [records[i : i + size] for i in range(0, len(records), size)]
        here = (cursor.partition, cursor.next_offset)
        # After Backpressure the SDK repeats this batch: skip the parts already delivered.
        done = self._done_parts[1] if self._done_parts and self._done_parts[0] == here else 0
        for index in range(done, len(parts)):
            batch_id = f"{cursor.partition}-{cursor.next_offset}-{index}"
            self._deliver(parts[index], batch_id)
            self._done_parts = (here, index + 1)
        self._state.write(cursor_doc(cursor))
        self._done_parts = None

    def _deliver(self, records: Sequence[DeliveredRecord], batch_id: str) -> None:
        body = dumps({"batch_id": batch_id, "records": [r.to_json_dict() for r in records]})
        result = PostResult(False, None, "not sent")
        for attempt in range(1, self.config.max_attempts + 1):
            result = self._post(body, batch_id)
            if result.ok:
                return
            status = result.status
            if status in _CONFIG_STATUSES or (status is not None and 300 <= status < 400):
                raise WebhookConfigError(
                    f"{self.config.url} answered {status} ({result.detail}): check url and "
                    "auth_token; nothing was acknowledged"
                )
            if status == 429 or (status == 503 and result.retry_after is not None):
                delay = result.retry_after
                if delay is None:
                    delay = backoff_delay(
                        attempt, self.config.backoff_initial_s, self.config.backoff_max_s, self._rng
                    )
                raise Backpressure(min(delay, self.config.backoff_max_s), f"webhook {status}")
            if status is not None and 400 <= status < 500 and status not in _RETRY_4XX:
                break  # the content is refused: retrying the same bytes cannot help
            if attempt < self.config.max_attempts:
                delay = backoff_delay(
                    attempt, self.config.backoff_initial_s, self.config.backoff_max_s, self._rng
                )
                log.warning(
                    "webhook POST %s failed (%s); attempt %d of %d in %.2f s",
                    batch_id,
                    result.detail,
                    attempt + 1,
                    self.config.max_attempts,
                    delay,
                )
                time.sleep(delay)
        self._dead_letter(records, batch_id, result, attempt)

    def _post(self, body: bytes, batch_id: str) -> PostResult:
        request = urllib.request.Request(self.config.url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Idempotency-Key", batch_id)
        request.add_header("X-GovHub-Batch", batch_id)
        for name, value in self.config.headers.items():
            request.add_header(name, value)
        if self.config.auth_token is not None:
            request.add_header(
                "Authorization", f"Bearer {self.config.auth_token.get_secret_value()}"
            )
        self.posts += 1
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as response:
                response.read()
                return PostResult(True, response.status, "ok")
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip() or str(exc.reason)
            return PostResult(False, exc.code, detail, _retry_after(exc.headers.get("Retry-After")))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            return PostResult(False, None, f"{type(exc).__name__}: {reason}")

    def _dead_letter(
        self, records: Sequence[DeliveredRecord], batch_id: str, result: PostResult, attempts: int
    ) -> None:
        path = self.dead_letter_dir / f"{batch_id}.json"
        doc = {
            "batch_id": batch_id,
            "url": self.config.url,
            "status": result.status,
            "error": result.detail,
            "attempts": attempts,
            "failed_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "records": [r.to_json_dict() for r in records],
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(dumps(doc, orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        fsync_dir(self.dead_letter_dir)
        self.dead_lettered += 1
        log.error(
            "webhook batch %s (%d records) dead-lettered to %s after %d attempts: %s",
            batch_id,
            len(records),
            path,
            attempts,
            result.detail,
        )
