"""The connector conformance harness: what a case is, and the world it runs in.

A case module ``tests/conformance/cases_<name>.py`` exposes ``CASES: list[ConnectorCase]``.
Each case says how to configure its source (the ``[source]`` table of a connector file) and
how to feed rows into it; the suite does the rest — the same checks for every connector.
See ``docs/connectors.md`` ("Conformance suite").
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from hub import kafka
from hub.catalogue.model import Resource
from hub.catalogue.quality import id_card_check_char
from hub.catalogue.samples import load_sample
from hub.config import isolated_config
from hub.demo.world import COMMUNITIES
from hub.parties.model import Party, PartyKind, hash_token, new_token
from hub.registry.schemas import AvroCodec
from hub.router.engine import H_RECORD_ID
from hub.state import ControlState
from hub.topics import COMPACTED, Topics, ensure_resource_topics, ensure_topics

Row = dict[str, Any]


@dataclass(frozen=True)
class CaseEnv:
    """What a case may use to set up its source."""

    tmp: Path  # a folder of the case's own
    bootstrap: str
    topic_prefix: str
    resource: Resource
    codec: AvroCodec
    token: str  # the resource department's token at the hub
    port: int  # a free TCP port the source may listen on


class Feeder(Protocol):
    """Delivers rows into a source, the way a department would (files, HTTP posts, SQL)."""

    def start(self) -> None:
        """Begin delivering (may run on in a thread; a feeder retries until accepted)."""

    def wait(self, timeout: float) -> None:
        """Return once the source side accepted every row; raise if it did not in time."""

    def stop(self) -> None:
        """Stop delivering; idempotent."""


@dataclass(frozen=True)
class ConnectorCase:
    """One connector type in one configuration, as the conformance suite drives it."""

    name: str  # test id, e.g. "file-csv-gbk"
    type: str  # registered connector type
    settings: Callable[[CaseEnv], dict[str, Any]]  # the [source] table
    feed: Callable[[CaseEnv, Sequence[Row]], Feeder]
    requires: tuple[str, ...] = ()  # importable modules the case needs (else skipped)
    cleanup: Callable[[CaseEnv], None] | None = None
    idle_read_s: float = 1.0  # longest a read() may take when nothing is pending
    in_flight: int = 0  # records a feeder may have handed over but not seen confirmed

    def window(self, batch_size: int) -> int:
        """Duplicates one interruption may cause: the unacknowledged batch, plus what the
        feeder re-sends because its confirmation was lost."""
        return batch_size + self.in_flight


def conformance_rows(count: int, start: int = 0) -> list[Row]:
    """Valid 低保 rows with unique business keys (id_card), in four communities."""
    rows = []
    for i in range(start, start + count):
        birth = datetime.date(1940, 1, 1) + datetime.timedelta(days=i)
        first17 = f"110105{birth:%Y%m%d}{i % 997 + 1:03d}"
        rows.append(
            {
                "id_card": first17 + id_card_check_char(first17),
                "name": f"张{i}",
                "region_code": f"11010500{1 + i % 2}00{1 + i % 2}",
                "household_size": 1 + i % 5,
                "amount": f"{600 + i % 900}.50",
                "approved_on": (
                    datetime.date(2026, 1, 1) + datetime.timedelta(i % 300)
                ).isoformat(),
                "category": "URBAN" if i % 3 else "RURAL",
                "address": f"北京市朝阳区{i}号",
            }
        )
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the world: a provisioned resource on a broker, without the router -------------------


@dataclass
class World:
    bootstrap: str
    topics: Topics
    env: CaseEnv
    state: ControlState

    @property
    def source_topic(self) -> str:
        resource = self.env.resource
        return self.topics.source(resource.department, resource.code)

    def connector_file(
        self, case: ConnectorCase, name: str, batch_size: int, **connector: Any
    ) -> Path:
        """A connector config file for ``case``, as a department would write it."""
        lines = [
            "[connector]",
            f'name = "{name}"',
            f'type = "{case.type}"',
            f'resource = "{self.env.resource.code}"',
            f"batch_size = {batch_size}",
            "poll_interval_s = 0.05",
            *(f"{k} = {_toml(v)}" for k, v in connector.items()),
            "",
            "[kafka]",
            f'bootstrap_servers = "{self.bootstrap}"',
            f'topic_prefix = "{self.topics.prefix}"',
            "",
            "[source]",
        ]
        tables: list[str] = []
        for key, value in case.settings(self.env).items():
            if isinstance(value, dict):
                tables += [
                    "",
                    f"[source.{key}]",
                    *(f"{_q(k)} = {_toml(v)}" for k, v in value.items()),
                ]
            else:
                lines.append(f"{key} = {_toml(value)}")
        path = self.env.tmp / f"{name}.toml"
        path.write_text("\n".join(lines + tables) + "\n", encoding="utf-8")
        return path


def _q(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else _toml(key)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_q(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


@contextlib.contextmanager
def connector_world(bootstrap: str, tmp: Path) -> Iterator[World]:
    """The 低保 resource of 民政局 (``mzj``) with its schema, topics and party token."""
    topics = Topics(f"cf{uuid.uuid4().hex[:8]}.")
    admin = kafka.admin_client(bootstrap)
    ensure_topics(admin, {t: (1, COMPACTED) for t in topics.control})
    state = ControlState(isolated_config(bootstrap, topics.prefix, tmp / "state"))
    state.start()
    try:
        sample = load_sample("mzj.dibao")
        resource = sample.resource
        schema_id = state.registry.register(resource.subject, sample.schema_json)
        state.put_resource(resource)
        ensure_resource_topics(admin, topics, resource.department, resource.code)
        token = new_token()
        state.put_party(
            Party(
                id=resource.department,
                name=resource.department_name,
                kind=PartyKind.DEPARTMENT,
                region_code="110105000000",
                token_hash=hash_token(token),
            )
        )
        for pid, name, region, _ in COMMUNITIES:  # the region codes records may carry
            state.put_party(Party(id=pid, name=name, kind=PartyKind.UNIT, region_code=region))
        case_tmp = tmp / "case"
        case_tmp.mkdir()
        env = CaseEnv(
            case_tmp,
            bootstrap,
            topics.prefix,
            resource,
            state.registry.codec(schema_id),
            token,
            free_port(),
        )
        yield World(bootstrap, topics, env, state)
    finally:
        state.stop()


# -- what reached Kafka ------------------------------------------------------------------


@dataclass
class TopicContents:
    """Records of the source topic seen so far: business key and record id of each."""

    records: list[tuple[str, str]] = field(default_factory=list)

    @property
    def keys(self) -> set[str]:
        return {key for key, _ in self.records}

    @property
    def duplicates(self) -> int:
        return len(self.records) - len({rid for _, rid in self.records})

    def ids_by_key(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for key, rid in self.records:
            out.setdefault(key, set()).add(rid)
        return out


class TopicWatcher:
    """Reads a topic from the beginning and keeps reading; ``wait_for`` polls until a
    condition on what was read holds."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.contents = TopicContents()
        self._consumer: Consumer = kafka.consumer(
            bootstrap, f"conformance-{uuid.uuid4().hex}", "conformance-watcher"
        )
        meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])

    def poll(self, seconds: float = 0.2) -> TopicContents:
        for msg in self._consumer.consume(10_000, seconds):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading the source topic: {err}")
                continue
            headers = dict(msg.headers() or [])
            rid = headers.get(H_RECORD_ID)
            rid = rid.decode() if isinstance(rid, bytes) else str(rid or "")
            self.contents.records.append(((msg.key() or b"").decode(), rid))
        return self.contents

    def wait_for(
        self, predicate: Callable[[TopicContents], bool], timeout: float, what: str
    ) -> TopicContents:
        deadline = time.monotonic() + timeout
        while not predicate(self.poll()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}: "
                    f"{len(self.contents.keys)} distinct keys, {len(self.contents.records)} records"
                )
        return self.contents

    def close(self) -> None:
        self._consumer.close()


def assert_complete(
    contents: TopicContents, rows: Sequence[Row], window: int, interruptions: int = 1
) -> None:
    """Every row present; duplicates within the at-least-once window, each one a replay
    of the same record id."""
    expected = {row["id_card"] for row in rows}
    missing = expected - contents.keys
    assert not missing, (
        f"{len(missing)} of {len(expected)} rows missing, e.g. {sorted(missing)[:3]}"
    )
    assert contents.keys == expected, f"unexpected keys {sorted(contents.keys - expected)[:3]}"
    assert all(rid for _, rid in contents.records), "a record without govhub-record-id"
    several = {k: ids for k, ids in contents.ids_by_key().items() if len(ids) > 1}
    assert not several, f"a row published under two record ids: {list(several.items())[:2]}"
    assert contents.duplicates <= window * interruptions, (
        f"{contents.duplicates} duplicates, beyond the at-least-once window of "
        f"{window} per interruption ({interruptions})"
    )


# -- the connector as a process ----------------------------------------------------------


CLI = [sys.executable, "-m", "hub.cli", "--log-level", "INFO", "--log-format", "text"]


class ConnectorProcess:
    """``python -m hub.cli connector run CONFIG`` as a department runs it."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "connector", "run", str(self.config)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"the connector did not stop on SIGTERM:\n{self.output()}"
            ) from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
