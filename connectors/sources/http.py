"""HTTP push source (``type = "http"``): department systems POST records to the hub.

``POST <path>`` with ``Authorization: Bearer <department token>`` and a JSON array or NDJSON
body. The answer is sent only after the records are in Kafka and checkpointed (the runner's
``ack``), and lists a result per record: ``accepted``, or ``rejected`` with the reason the
publisher gave (the catalogue's quality rules, the schema, or unreadable JSON; rejected
records are kept in the department's dead-letter topic too). The runner hands the
publisher's verdicts over with each acknowledged batch (:class:`VerdictReceiver`), so every
record is judged once; a program that drives the source without the runner gets the same
verdicts from the source's own check. Limits answer early: 413 for a body over
``max_body_bytes``, 429 with ``Retry-After`` when ``max_pending`` records already wait for
Kafka, 503 while stopping.

Retries are safe: with an ``Idempotency-Key`` header the record ids are
``<connector>:<key>:<index>`` — a repeated POST gets the remembered answer, and a POST
repeated after a connector restart publishes the same ids again (recognisable downstream);
without one, a ``record_id_field`` in the records names them, else a random request id does.

Tokens are checked against the hub's ``_govhub.parties`` (the resource's department only;
the scrypt check runs once per token, off the event loop) or against ``token_hashes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.base import PartyRows, Source, SourceRecord
from connectors.publisher import Rejection
from hub.api.security import RateLimiter
from hub.audit.events import AuditWriter, claimed_party, control_event
from hub.catalogue.admission import Admission
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.model import Resource
from hub.config import ConfigError
from hub.controlstate import CompactedTable
from hub.metrics import LATENCY_BUCKETS
from hub.parties.model import PartyStatus, verify_token
from hub.registry.schemas import AvroCodec
from hub.registry.store import SchemaRegistry
from hub.topics import Topics

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "govhub_connector_http_requests_total", "Requests to the HTTP source", ["connector", "status"]
)
REQUEST_SECONDS = Histogram(
    "govhub_connector_http_request_seconds",
    "Time from request to answer, including the wait for Kafka",
    ["connector"],
    buckets=LATENCY_BUCKETS,
)

READ_WAIT_S = 1.0  # how long read() waits for a request before reporting an idle source
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REMEMBERED_KEYS = 10_000
_REMEMBERED_BYTES = 64 * 2**20
_REJECTED_TOKENS = 1_000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HubAccess(_Frozen):
    """Where the source reads its resource, schema and the parties."""

    resource: str = Field(description="catalogue code (the connector's resource)")
    bootstrap_servers: str = Field(min_length=1)
    topic_prefix: str = ""
    client_config: dict[str, str] = Field(default_factory=dict)


class HttpSourceConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535, description="0: any free port")
    path: str = Field(default="/v1/records", pattern=r"^/[A-Za-z0-9/._-]*$")
    auth: Literal["parties", "token-hashes"] = "parties"
    token_hashes: tuple[str, ...] = Field(
        default=(), description="auth = token-hashes: scrypt$… hashes or sha256:<hex>"
    )
    record_id_field: str | None = Field(
        default=None, description="a record field naming the record (when no Idempotency-Key)"
    )
    max_body_bytes: int = Field(default=16 * 2**20, ge=1024, le=2**30)
    max_records_per_request: int = Field(default=10_000, ge=1, le=1_000_000)
    max_pending: int = Field(default=50_000, ge=1, description="records waiting for Kafka")
    answer_timeout_s: float = Field(default=60.0, gt=0, description="then 503, retry")
    hub: HubAccess | None = Field(
        default=None, description="the hub's Kafka, for the parties, catalogue entry and schema"
    )

    @model_validator(mode="after")
    def _hashes_when_needed(self) -> HttpSourceConfig:
        if self.auth == "token-hashes" and not self.token_hashes:
            raise ValueError("auth = 'token-hashes' needs at least one entry in token_hashes")
        return self


class SourceStopping(Exception):
    pass


@dataclass
class _Ticket:
    """One request's records on their way to Kafka."""

    records: list[SourceRecord]
    done: asyncio.Future[None]
    remaining: int = 0
    rejections: dict[int, Rejection] = field(default_factory=dict)  # index → why
    answer: bytes = b""

    def summary(self) -> bytes:
        """The answer: a result per record, in request order."""
        rejections = self.rejections
        results: list[dict[str, Any]] = []
        for index, record in enumerate(self.records):
            rejection = rejections.get(index)
            if rejection is None:
                results.append({"id": record.record_id, "status": "accepted"})
            else:
                results.append(
                    {
                        "id": record.record_id,
                        "status": "rejected",
                        "reason": rejection.reason,
                        "detail": rejection.detail,
                    }
                )
        rejected = len(rejections)
        return orjson.dumps(
            {"accepted": len(self.records) - rejected, "rejected": rejected, "results": results}
        )


@dataclass
class _HubView:
    resource: Resource
    codec: AvroCodec
    parties: PartyRows | None
    regions: Container[str] | None  # the region codes records may carry, as the publisher
    tables: list[CompactedTable] = field(default_factory=list)  # opened here, stopped here
    admission: Admission | None = None  # built when records must be judged here

    def judge(self, record: SourceRecord) -> Rejection | None:
        """The publisher's verdict on one record, for when it was not handed over."""
        if record.value is None:
            return Rejection("unparsable", record.error or "unparsable")
        if self.admission is None:
            # Verdicts only: the framing's schema id does not matter here.
            self.admission = Admission(self.resource, self.codec, 0)
        verdict = self.admission.admit(record.value, self.regions)
        if isinstance(verdict, tuple):
            return None
        return Rejection(verdict.reason, verdict.detail)


class HttpSource(Source):
    def __init__(self, name: str, config: HttpSourceConfig) -> None:
        self.name = name
        self.config = config
        self.port = config.port
        self._hub: _HubView | None = None
        self._queue: list[tuple[SourceRecord, _Ticket, int]] = []
        self._unacked: dict[int, tuple[_Ticket, int]] = {}  # id(record) → its request
        self._judged: Sequence[SourceRecord] | None = None  # the batch whose verdicts came
        self._wakeup = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._inflight: dict[str, _Ticket] = {}
        self._answers: OrderedDict[str, bytes] = OrderedDict()
        self._answer_bytes = 0
        self._verified: dict[str, str] = {}  # token SHA-256 → the party hash it matched
        self._verifying: dict[tuple[str, str], asyncio.Future[bool]] = {}  # checks under way
        self._refused: OrderedDict[str, None] = OrderedDict()
        # Per address: 20 refused sign-ins at once, then one a second (as the api).
        self._failed_sign_ins = RateLimiter(rate=1.0, burst=20)
        self._audit: Callable[[Mapping[str, Any]], Any] | None = None
        self._own_audit: AuditWriter | None = None

    @classmethod
    def from_config(cls, name: str, config: HttpSourceConfig) -> HttpSource:
        return cls(name, config)

    def bind(
        self,
        resource: Resource,
        codec: AvroCodec,
        parties: PartyRows | None = None,
        regions: Container[str] | None = None,
    ) -> None:
        """Give the source its resource, schema, parties and known region codes instead
        of reading them through ``source.hub``."""
        self._hub = _HubView(resource, codec, parties, regions)

    # -- contract ----------------------------------------------------------------------
    async def connect(self, checkpoint: Mapping[str, Any] | None) -> None:
        self._stopping = False
        if self._hub is None:
            if self.config.hub is None:
                raise ConfigError(
                    "source.hub: the HTTP source needs the hub's Kafka and its resource "
                    "(resource, bootstrap_servers, topic_prefix)"
                )
            self._hub = await asyncio.to_thread(_load_hub, self.config.hub)
            if self._audit is None:
                access = self.config.hub
                self._own_audit = AuditWriter(
                    access.bootstrap_servers,
                    Topics(access.topic_prefix),
                    access.client_config,
                    role=f"connector-{self.name}",
                )
                self._audit = self._own_audit.write
        elif self.config.auth == "parties" and self._hub.parties is None:
            raise ConfigError("source.auth: 'parties' needs the hub's parties table")
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post(self.config.path, self._ingest)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await self.close()
            raise ConfigError(
                f"source.port: cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from None
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info(
            "HTTP source listening on http://%s:%d%s",
            self.config.host,
            self.port,
            self.config.path,
            extra={"connector": self.name},
        )

    async def read(self, max_records: int) -> list[SourceRecord]:
        if not self._queue:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), READ_WAIT_S)
        taken, self._queue = self._queue[:max_records], self._queue[max_records:]
        unacked = self._unacked
        for record, ticket, index in taken:
            unacked[id(record)] = (ticket, index)
        return [record for record, _, _ in taken]

    def receive_verdicts(
        self, records: Sequence[SourceRecord], rejections: Mapping[int, Rejection]
    ) -> None:
        """The publisher's verdicts on the batch about to be acknowledged."""
        for position, rejection in rejections.items():
            entry = self._unacked.get(id(records[position]))
            if entry is not None:
                ticket, index = entry
                ticket.rejections[index] = rejection
        self._judged = records

    async def ack(self, records: Sequence[SourceRecord]) -> None:
        judged, self._judged = self._judged is records, None
        hub = self._hub
        for record in records:
            entry = self._unacked.pop(id(record), None)
            if entry is None:
                continue
            ticket, index = entry
            if not judged and hub is not None:
                rejection = hub.judge(record)
                if rejection is not None:
                    ticket.rejections[index] = rejection
            ticket.remaining -= 1
            if ticket.remaining == 0 and not ticket.done.done():
                ticket.answer = ticket.summary()
                ticket.done.set_result(None)

    async def close(self) -> None:
        self._stopping = True
        stopped = SourceStopping("the connector is stopping: nothing of this request is stored")
        tickets = [t for _, t, _ in self._queue] + [t for t, _ in self._unacked.values()]
        for ticket in tickets:
            if not ticket.done.done():
                ticket.done.set_exception(stopped)
        self._queue, self._unacked = [], {}
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        hub = self._hub
        if hub is not None and hub.tables:
            self._hub = None
            await asyncio.to_thread(_stop_tables, hub.tables)
        own_audit, self._own_audit = self._own_audit, None
        if own_audit is not None:
            self._audit = None
            await asyncio.to_thread(own_audit.close)

    def lag(self) -> float | None:
        return float(len(self._queue) + len(self._unacked))

    # -- HTTP --------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "stopping" if self._stopping else "ok", "pending": self.lag()})

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await self._answer(request)
        except web.HTTPRequestEntityTooLarge:
            response = _error(413, f"the body is over {self.config.max_body_bytes} bytes")
        REQUESTS.labels(self.name, str(response.status)).inc()
        REQUEST_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        hub = self._hub
        if self._stopping or hub is None:
            return _error(503, "the connector is stopping", retry_after=1)
        address = request.remote or "unknown"
        wait = self._failed_sign_ins.wait_time(address)
        if wait > 0:
            # Before the slow hash: guessing tokens costs the guesser, not the hub.
            return _error(429, "too many failed sign-ins from this address", math.ceil(wait))
        authorization = request.headers.get("Authorization", "")
        refusal = await self._authenticate(authorization, hub)
        if refusal is not None:
            self._failed_sign_ins.take(address)
            self._audit_refusal(request, authorization, hub, refusal)
            return refusal
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            if not _KEY.match(key):
                return _error(400, "Idempotency-Key: 1-128 of A-Z a-z 0-9 . _ : -")
            remembered: bytes | web.Response | None = self._answers.get(key)
            if remembered is None and key in self._inflight:
                remembered = await self._wait(self._inflight[key])
            if isinstance(remembered, web.Response):
                return remembered
            if remembered is not None:
                return _raw_json(200, remembered, replayed=True)
        if (request.content_length or 0) > self.config.max_body_bytes:
            return _error(413, f"the body is over {self.config.max_body_bytes} bytes")
        body = await request.read()
        parsed = await asyncio.to_thread(self._parse, body, key, hub)
        if isinstance(parsed, web.Response):
            return parsed
        count = len(parsed)
        ticket = _Ticket(parsed, asyncio.get_running_loop().create_future(), count)
        if count == 0:
            return _raw_json(200, ticket.summary())
        pending = len(self._queue) + len(self._unacked)
        if pending + count > self.config.max_pending:
            return _error(429, f"{pending} records are waiting for Kafka", retry_after=1)
        self._queue.extend((record, ticket, index) for index, record in enumerate(parsed))
        self._wakeup.set()
        if key is None:
            answer = await self._wait(ticket)
            return answer if isinstance(answer, web.Response) else _raw_json(200, answer)
        self._inflight[key] = ticket
        try:
            answer = await self._wait(ticket)
        finally:
            self._inflight.pop(key, None)
        if isinstance(answer, web.Response):
            return answer
        self._remember(key, answer)
        return _raw_json(200, answer)

    def _remember(self, key: str, answer: bytes) -> None:
        """Keep the answer for retries, within a count and a byte budget (oldest out)."""
        self._answers[key] = answer
        self._answer_bytes += len(answer)
        while len(self._answers) > _REMEMBERED_KEYS or self._answer_bytes > _REMEMBERED_BYTES:
            _, dropped = self._answers.popitem(last=False)
            self._answer_bytes -= len(dropped)

    async def _wait(self, ticket: _Ticket) -> bytes | web.Response:
        try:
            await asyncio.wait_for(asyncio.shield(ticket.done), self.config.answer_timeout_s)
        except TimeoutError:
            return _error(
                503,
                "not confirmed by Kafka in time; retry with the same Idempotency-Key",
                retry_after=1,
            )
        except SourceStopping as exc:
            return _error(503, str(exc), retry_after=1)
        return ticket.answer

    def _parse(
        self, body: bytes, key: str | None, hub: _HubView
    ) -> list[SourceRecord] | web.Response:
        """Records with ids and positions (runs in a worker thread); the publisher judges
        them."""
        stripped = body.lstrip()
        items: list[tuple[Any, str | None]]
        if stripped.startswith(b"["):
            try:
                array = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                return _error(400, f"the body is not a JSON array: {exc}")
            items = [(v, None) for v in array]
        else:
            items = []
            for line in body.splitlines():
                if line.strip():
                    try:
                        items.append((orjson.loads(line), None))
                    except orjson.JSONDecodeError as exc:
                        items.append((None, f"invalid JSON: {exc}"))
        if len(items) > self.config.max_records_per_request:
            return _error(
                413, f"{len(items)} records: at most {self.config.max_records_per_request}"
            )
        prefix = f"{self.name}:{key or uuid.uuid4().hex}"
        id_field = self.config.record_id_field if key is None else None
        strip_id = id_field is not None and id_field not in hub.codec.field_names
        records: list[SourceRecord] = []
        append = records.append
        for index, (value, error) in enumerate(items):
            record_id = f"{prefix}:{index}"
            position = {"request": prefix, "index": index}
            if type(value) is dict:
                if id_field is not None and id_field in value:
                    record_id = f"{self.name}:{value[id_field]}"
                    if strip_id:
                        value = {k: v for k, v in value.items() if k != id_field}
                append(SourceRecord(record_id, value, position))
            else:
                detail = error or "not a JSON object"
                append(SourceRecord(record_id, None, position, b"", detail))
        return records

    def audit_sign_ins(self, write: Callable[[Mapping[str, Any]], Any]) -> None:
        """Send every refused sign-in to the hub's audit trail through ``write`` (an
        :class:`~hub.audit.events.AuditWriter`'s), as the api and the gateway do."""
        self._audit = write

    def _audit_refusal(
        self, request: web.Request, authorization: str, hub: _HubView, refusal: web.Response
    ) -> None:
        if self._audit is None:
            return
        try:
            reason = str(orjson.loads(refusal.body)["error"])  # type: ignore[arg-type]
        except (TypeError, ValueError, KeyError):
            reason = ""
        self._audit(
            control_event(
                claimed_party(authorization) or "anonymous",
                "sign-in.failed",
                target=f"connector:{self.name}",
                resource=hub.resource.code,
                outcome="failed",
                detail={"remote": request.remote or "", "reason": reason, "path": request.path},
            )
        )

    async def _authenticate(self, header: str, hub: _HubView) -> web.Response | None:
        if not header.startswith("Bearer "):
            return _error(401, "missing bearer token")
        token = header[len("Bearer ") :].strip()
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
        department = hub.resource.department
        if self.config.auth == "token-hashes":
            stored_hashes: Sequence[str] = self.config.token_hashes
        else:
            assert hub.parties is not None
            row = hub.parties.get(department)
            if row is None or not row.get("token_hash"):
                return _error(403, f"department {department} has no token at the hub")
            if row.get("status", PartyStatus.ACTIVE.value) != PartyStatus.ACTIVE.value:
                return _error(403, f"party {department} is {row.get('status')}")
            stored_hashes = (str(row["token_hash"]),)
        if self._verified.get(fingerprint) in stored_hashes:
            return None
        if fingerprint in self._refused:
            return _error(401, f"not a token of department {department}")
        for stored in stored_hashes:
            if await self._matches(token, fingerprint, stored):
                self._verified[fingerprint] = stored
                return None
        self._refused[fingerprint] = None
        if len(self._refused) > _REJECTED_TOKENS:
            self._refused.popitem(last=False)
        return _error(401, f"not a token of department {department}")

    async def _matches(self, token: str, fingerprint: str, stored: str) -> bool:
        """The slow check, once at a time per token and hash: concurrent first requests
        with a new token wait for one scrypt instead of each running their own."""
        key = (fingerprint, stored)
        check = self._verifying.get(key)
        if check is None:
            check = asyncio.ensure_future(
                asyncio.to_thread(_token_matches, token, fingerprint, stored)
            )
            self._verifying[key] = check
            check.add_done_callback(lambda _: self._verifying.pop(key, None))
        return await asyncio.shield(check)


def _token_matches(token: str, fingerprint: str, stored: str) -> bool:
    if stored.startswith("sha256:"):
        return hmac.compare_digest(fingerprint, stored[len("sha256:") :].lower())
    return verify_token(token, stored)


def _load_hub(access: HubAccess) -> _HubView:
    """The resource and its latest schema (read once), and the live parties table (kept:
    tokens and known region codes change while the source runs)."""
    topics = Topics(access.topic_prefix)
    names = [topics.catalogue, topics.schemas, topics.parties]
    tables = [
        CompactedTable(access.bootstrap_servers, name, client_config=access.client_config)
        for name in names
    ]
    try:
        for table in tables:
            table.start()
        row = tables[0].get(access.resource)
        if row is None:
            raise ConfigError(f"source.hub.resource: {access.resource!r} is not in the catalogue")
        resource = Resource.model_validate(row)
        registry = SchemaRegistry(tables[1])
        try:
            latest = registry.version(resource.subject, "latest")
        except KeyError:
            raise ConfigError(f"resource {access.resource!r} has no schema") from None
        codec = registry.codec(latest.schema_id)
    except BaseException:
        _stop_tables(tables)
        raise
    _stop_tables(tables[:2])
    parties = tables[2]
    return _HubView(resource, codec, parties, PartyRegions(parties), [parties])


def _stop_tables(tables: Sequence[CompactedTable]) -> None:
    for table in tables:
        table.stop()


def _raw_json(status: int, body: bytes, replayed: bool = False) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _json(status: int, doc: Mapping[str, Any]) -> web.Response:
    return _raw_json(status, orjson.dumps(doc))


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    response = _json(status, {"error": message})
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
