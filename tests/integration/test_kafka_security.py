"""Secure mode on a real broker: SASL/SCRAM, the StandardAuthorizer and the hub's ACLs.

One secure local broker for the module (``LocalKafka(secure=True)``); one hub on it whose
roles run in this process, each as its own Kafka principal: api, router, gateway and
audit notary, and a department connector publishing as ``conn-mzj``. The tests prove the
refusals (foreign source topic, delivery topic, control topics, foreign transactional id,
bad credentials) and that the whole path still delivers under those ACLs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from connectors.base import SourceRecord
from connectors.publisher import Publisher
from connectors.sdk.gateway import GatewaySettings, GatewaySubscriber
from connectors.sinks.jsonl import JsonlSink
from hub import kafka
from hub.catalogue.known_regions import PartyRegions
from hub.catalogue.samples import load_sample
from hub.config import HubConfig, isolated_config
from hub.controlstate import CompactedTable
from hub.crypto.frames import peek_header
from hub.demo.world import Member, build_members, build_subscriptions, generate_records, provision
from hub.kafkasec import Principals, sync_acls
from hub.kafkasec.apply import set_password
from hub.kafkasec.commands import read_properties
from hub.localkafka import LocalKafka, find_free_base_port
from hub.localkafka.security import ensure_tls_material, security_paths
from hub.runtime import HubRuntime
from hub.topics import ensure_topics

pytestmark = pytest.mark.integration

STATE_ROOT = Path("/tmp")
REFUSED_TOPIC = {KafkaError.TOPIC_AUTHORIZATION_FAILED}


@dataclass
class SecureBroker:
    kafka: LocalKafka
    bootstrap: str
    admin_settings: dict[str, str]

    def settings(self, user: str, password: str) -> dict[str, str]:
        return {**self.admin_settings, "sasl.username": user, "sasl.password": password}


@pytest.fixture(scope="module")
def broker() -> Iterator[SecureBroker]:
    state_dir = STATE_ROOT / f"sec-kafka-it-{uuid.uuid4().hex[:8]}"
    local = LocalKafka(
        state_dir,
        base_port=find_free_base_port(1, low=29500, high=29900),
        heap_mb=512,
        metrics_port=None,
        secure=True,
    )
    try:
        bootstrap = local.up(timeout=180.0)
        yield SecureBroker(local, bootstrap, local.client_config)
    finally:
        local.down()
        shutil.rmtree(state_dir, ignore_errors=True)


@dataclass
class SecureHub:
    broker: SecureBroker
    principals: Principals
    credentials: dict[str, dict[str, str]]  # user -> librdkafka settings
    configs: dict[str, HubConfig]  # role -> config with its principal
    runtimes: dict[str, HubRuntime]
    members: dict[str, Member]
    schema_id: int
    tmp: Path

    @property
    def topics(self) -> Any:
        return self.runtimes["api"].state.topics

    def as_user(self, user: str) -> dict[str, str]:
        return self.credentials[user]


def _role_config(
    broker: SecureBroker, prefix: str, state: Path, settings: dict[str, str]
) -> HubConfig:
    return isolated_config(
        broker.bootstrap,
        prefix,
        state,
        **{
            "kafka.client_config": settings,
            "router.transaction_interval_ms": 100,
            "gateway.position_interval_s": 1.0,
        },
    )


@pytest.fixture(scope="module")
def hub(broker: SecureBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureHub]:
    tmp = tmp_path_factory.mktemp("secure-hub")
    prefix = f"sec{uuid.uuid4().hex[:6]}."
    principals = Principals(prefix)
    secrets_dir = tmp / "principals"
    admin_config = _role_config(broker, prefix, tmp / "state", broker.admin_settings)
    # 1. The roles' principals and ACLs, before any hub process runs.
    first = sync_acls(admin_config, broker.admin_settings, apply=True, secrets_dir=secrets_dir)
    assert first.departments == () and set(first.applied.users) == set(principals.roles)  # type: ignore[union-attr]
    credentials = {u: read_properties(p) for u, p in first.client_files.items()}
    configs = {
        role: _role_config(broker, prefix, tmp / "state", credentials[user])
        for role, user in (
            ("api", principals.api),
            ("router", principals.router),
            ("gateway", principals.gateway),
            ("audit", principals.audit),
        )
    }
    runtimes: dict[str, HubRuntime] = {}
    try:
        # 2. The api creates the hub's topics and holds the world's control state.
        api = runtimes["api"] = HubRuntime(configs["api"], ("api",))
        api.start()
        api.wait_ready()
        sample = load_sample("mzj.dibao")
        members = build_members()
        schema_id = provision(
            api.state,
            kafka.admin_client(broker.bootstrap, credentials[principals.api]),
            sample,
            members,
            build_subscriptions(sample.resource.code),
        )
        # 3. Read from the control state now: one connector principal per department.
        second = sync_acls(admin_config, broker.admin_settings, apply=True, secrets_dir=secrets_dir)
        assert second.departments == ("mzj", "rsj")
        assert set(second.applied.users) == {  # type: ignore[union-attr]
            principals.connector("mzj"),
            principals.connector("rsj"),
        }
        assert not second.changes.delete
        credentials |= {u: read_properties(p) for u, p in second.client_files.items()}
        # 4. The other roles, each as its own principal.
        for role in ("router", "gateway", "audit"):
            runtime = runtimes[role] = HubRuntime(configs[role], (role,))
            runtime.start()
        for runtime in runtimes.values():
            runtime.wait_ready()
        yield SecureHub(broker, principals, credentials, configs, runtimes, members, schema_id, tmp)
    finally:
        for runtime in reversed(runtimes.values()):
            runtime.stop()


# -- helpers ---------------------------------------------------------------------------------


def produce_error(settings: dict[str, str], bootstrap: str, topic: str) -> KafkaError | None:
    """Produce one record; the error of its delivery (None: written)."""
    errors: list[KafkaError | None] = []
    producer = kafka.producer(bootstrap, "sec-test", settings, message_timeout_ms=15_000)
    producer.produce(topic, b"value", key=b"k", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(20)
    assert len(errors) == 1, f"no delivery report for {topic}"
    return errors[0]


def consume_error(settings: dict[str, str], bootstrap: str, topic: str) -> KafkaError | None:
    """Read partition 0 of ``topic`` from the start; the first error (None: it could read).

    A principal without even DESCRIBE is refused at the metadata request already; one
    with DESCRIBE but not READ, at the fetch."""
    consumer = kafka.consumer(
        bootstrap, f"govhub-table-{uuid.uuid4().hex}", "sec-test", settings,
        enable_partition_eof=True,
    )  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            return metadata.error  # type: ignore[no-any-return]
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is None or err.code() == KafkaError._PARTITION_EOF:
                return None
            return err
        raise AssertionError(f"neither records, end nor error from {topic}")
    finally:
        consumer.close()


def codes(err: KafkaError | None) -> int | None:
    return None if err is None else err.code()


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_mode_serves_sasl_ssl_with_the_generated_ca() -> None:
    """`govhub kafka up --secure --tls`: clients trusting the printed CA get in with their
    SCRAM credentials; clients not trusting it, or not speaking TLS, do not."""
    state_dir = STATE_ROOT / f"sec-kafka-tls-{uuid.uuid4().hex[:8]}"
    local = LocalKafka(
        state_dir,
        base_port=find_free_base_port(1, low=29500, high=29900),
        heap_mb=384,
        metrics_port=None,
        secure=True,
        tls=True,
    )
    try:
        bootstrap = local.up(timeout=180.0)
        admin_settings = local.client_config
        assert admin_settings["security.protocol"] == "SASL_SSL"
        assert admin_settings["ssl.ca.location"] == str(local.ca_file)
        assert local.status().healthy
        admin = kafka.admin_client(bootstrap, admin_settings)
        set_password(admin, "tls-user", "tls-password")
        user = {**admin_settings, "sasl.username": "tls-user", "sasl.password": "tls-password"}
        deadline = time.monotonic() + 10
        while True:  # the new credential reaches the broker's cache through the metadata log
            try:
                kafka.admin_client(bootstrap, user).list_topics(timeout=3)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
        other = security_paths(state_dir / "elsewhere")
        ensure_tls_material(other)  # another local CA: not the one that signed the broker
        untrusting = {**user, "ssl.ca.location": str(other.ca_cert)}
        errors = _authentication_error(bootstrap, untrusting)
        assert any(e.code() in (KafkaError._SSL, KafkaError._TRANSPORT) for e in errors), errors
        no_tls = {**user, "security.protocol": "SASL_PLAINTEXT"}
        no_tls.pop("ssl.ca.location")
        _authentication_error(bootstrap, no_tls)
    finally:
        local.down()
        shutil.rmtree(state_dir, ignore_errors=True)


# -- refusals --------------------------------------------------------------------------------


def test_a_department_writes_only_its_own_source_topics(hub: SecureHub) -> None:
    t, b = hub.topics, hub.broker
    foreign = t.source("rsj", "x")
    ensure_topics(kafka.admin_client(b.bootstrap, b.admin_settings), {foreign: (1, {})})
    mzj = hub.as_user(hub.principals.connector("mzj"))
    assert codes(produce_error(mzj, b.bootstrap, foreign)) in REFUSED_TOPIC
    assert codes(produce_error(mzj, b.bootstrap, t.dlq("rsj"))) in REFUSED_TOPIC
    # A look-alike department name is not inside the prefix ("govhub.src.mzj." ends in a dot).
    lookalike = t.source("mzjx", "dibao")
    ensure_topics(kafka.admin_client(b.bootstrap, b.admin_settings), {lookalike: (1, {})})
    assert codes(produce_error(mzj, b.bootstrap, lookalike)) in REFUSED_TOPIC
    # Its own prefix and dead-letter topic are open to it.
    assert produce_error(mzj, b.bootstrap, t.dlq("mzj")) is None
    own = t.source("mzj", "extra")
    ensure_topics(kafka.admin_client(b.bootstrap, b.admin_settings), {own: (1, {})})
    assert produce_error(mzj, b.bootstrap, own) is None
    # ...but a connector cannot read a source topic back, not even its own.
    assert codes(consume_error(mzj, b.bootstrap, own)) in REFUSED_TOPIC


def test_subscribers_cannot_read_the_delivery_topic_directly(hub: SecureHub) -> None:
    b = hub.broker
    delivery = hub.topics.delivery
    # A subscribing department's principal (it has ACLs, none on the delivery topic) ...
    rsj = hub.as_user(hub.principals.connector("rsj"))
    assert codes(consume_error(rsj, b.bootstrap, delivery)) in REFUSED_TOPIC
    # ... and an authenticated principal the hub gave no ACL at all.
    admin = kafka.admin_client(b.bootstrap, b.admin_settings)
    set_password(admin, "sub-jianwai", "a-password-of-its-own")
    stranger = b.settings("sub-jianwai", "a-password-of-its-own")
    assert codes(consume_error(stranger, b.bootstrap, delivery)) in REFUSED_TOPIC
    # The gateway's principal reads it.
    gateway = hub.as_user(hub.principals.gateway)
    assert consume_error(gateway, b.bootstrap, delivery) is None


def test_only_hub_roles_read_control_topics(hub: SecureHub) -> None:
    t, b, p = hub.topics, hub.broker, hub.principals
    for user in (p.connector("mzj"), p.connector("rsj")):
        for topic in (t.keys, t.subscriptions, t.audit, t.audit_chain):
            assert codes(consume_error(hub.as_user(user), b.bootstrap, topic)) in REFUSED_TOPIC
    # Roles read what they materialise and nothing beyond their part.
    assert consume_error(hub.as_user(p.api), b.bootstrap, t.keys) is None
    assert consume_error(hub.as_user(p.router), b.bootstrap, t.subscriptions) is None
    gateway = hub.as_user(p.gateway)
    assert codes(consume_error(gateway, b.bootstrap, t.audit)) in REFUSED_TOPIC
    assert codes(produce_error(gateway, b.bootstrap, t.parties)) in REFUSED_TOPIC
    router = hub.as_user(p.router)
    assert codes(produce_error(router, b.bootstrap, t.subscriptions)) in REFUSED_TOPIC


def test_a_router_uses_only_its_transactional_ids(hub: SecureHub) -> None:
    b = hub.broker
    router = hub.as_user(hub.principals.router)
    foreign = kafka.producer(b.bootstrap, "sec-test", router, transactional_id="intruder-0")
    with pytest.raises(KafkaException) as refused:
        foreign.init_transactions(20)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    # Another instance of the router (its configured id with another number) may.
    own_id = hub.configs["router"].router.transactional_id + "-7"
    own = kafka.producer(b.bootstrap, "sec-test", router, transactional_id=own_id)
    own.init_transactions(20)
    own.begin_transaction()
    own.produce(hub.topics.delivery, b"x", key=b"nobody")
    own.abort_transaction(20)
    # A connector has no transactional id at all.
    mzj = hub.as_user(hub.principals.connector("mzj"))
    sneaky = kafka.producer(b.bootstrap, "sec-test", mzj, transactional_id=own_id)
    with pytest.raises(KafkaException) as refused:
        sneaky.init_transactions(20)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def _authentication_error(bootstrap: str, settings: dict[str, str]) -> list[KafkaError]:
    errors: list[KafkaError] = []
    admin = kafka.admin_client(
        bootstrap,
        {**settings, "error_cb": errors.append, "log_level": "0"},  # type: ignore[dict-item]
    )
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)
    return errors


def test_wrong_password_unknown_user_and_plaintext_are_refused(hub: SecureHub) -> None:
    b = hub.broker
    api = hub.as_user(hub.principals.api)
    wrong = {**api, "sasl.password": "not-the-password"}
    for settings in (wrong, b.settings("nobody-at-all", "whatever")):
        errors = _authentication_error(b.bootstrap, settings)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    # No SASL at all: the listener speaks SASL only, so the client never gets metadata.
    _authentication_error(b.bootstrap, {})


# -- the whole path --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(hub: SecureHub) -> int:
    """40 records published by the 民政局 connector as ``conn-mzj``; returns the count."""
    api = hub.runtimes["api"]
    sample = load_sample("mzj.dibao")
    conn = hub.as_user(hub.principals.connector("mzj"))
    bootstrap = hub.broker.bootstrap
    t = hub.topics
    # The connector reads what it needs (checkpoints, parties) and writes as conn-mzj.
    checkpoints = CompactedTable(bootstrap, t.connect_offsets, client_config=conn)
    parties = CompactedTable(bootstrap, t.parties, client_config=conn)
    checkpoints.start()
    parties.start()
    try:
        publisher = Publisher(
            connector="sec-mzj",
            bootstrap_servers=bootstrap,
            topics=t,
            resource=sample.resource,
            schema_id=hub.schema_id,
            codec=api.state.registry.codec(hub.schema_id),
            checkpoints=checkpoints,
            client_config=conn,
            regions=PartyRegions(parties),
        )
        rows = generate_records(40, invalid=0)
        publisher.publish([SourceRecord(f"sec:{i}", r, {"n": i}) for i, r in enumerate(rows)])
        publisher.close()
        assert checkpoints.wait_for(lambda table: table.get("sec-mzj") is not None)
    finally:
        checkpoints.stop()
        parties.stop()
    return len(rows)


def test_a_secure_hub_delivers_end_to_end(hub: SecureHub, published: int) -> None:
    api = hub.runtimes["api"]
    # Through the router (its principal) and the gateway (its principal) to 人社局.
    member = hub.members["rsj"]
    sink = JsonlSink(hub.tmp / "received" / "rsj.jsonl")
    client = GatewaySubscriber(
        GatewaySettings(
            gateway_urls=(hub.runtimes["gateway"].gateway_url,),
            api_url=api.api_url,
            recipient="rsj",
            token=member.token,
            private_key=member.private_key,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.5,
        ),
        sink,
    )
    router = hub.runtimes["router"]
    done = lambda: client.records >= published or router.failure is not None  # noqa: E731
    assert asyncio.run(_run_until(client, done)) is None
    assert router.failure is None
    sink.close()
    assert client.records == published
    # The audit notary, as its own principal, chains what the router audited.
    assert hub.runtimes["audit"].notary is not None and hub.runtimes["audit"].notary.ready
    assert hub.runtimes["router"].failure is None and hub.runtimes["audit"].failure is None


async def _run_until(
    client: GatewaySubscriber, done: Callable[[], bool], timeout: float = 60.0
) -> BaseException | None:
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stop.set()
    result = await asyncio.gather(task, return_exceptions=True)
    return result[0] if isinstance(result[0], BaseException) else None


# -- tokens of the parties ---------------------------------------------------------------------


def call(url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(200).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def key_id_of(hub: SecureHub, recipient: str) -> bytes:
    """The data key id of one of ``recipient``'s frames, read as the admin."""
    consumer = kafka.consumer(
        hub.broker.bootstrap, f"sec-test-{uuid.uuid4().hex}", "sec-test", hub.broker.admin_settings
    )
    try:
        consumer.subscribe([hub.topics.delivery])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None and msg.key() == recipient.encode():
                    return peek_header(msg.value() or b"").key_id
    finally:
        consumer.close()
    raise AssertionError(f"no frame of {recipient} on the delivery topic")


COMMUNITY, STREET = "jianwai-yonganli", "jianwai"


def test_a_token_releases_only_its_own_partys_keys(hub: SecureHub, published: int) -> None:
    url = hub.runtimes["api"].api_url + "/v1/keys/release"
    key_id = key_id_of(hub, COMMUNITY).hex()
    own = {"key_id": key_id, "subscription": f"sub-{COMMUNITY}-dibao"}
    assert call(url, hub.members[COMMUNITY].token, own)[0] == 200
    # The street's token, for the community's subscription: not its subscription.
    status, answer = call(url, hub.members[STREET].token, own)
    assert status == 403 and "not yours" in answer
    # The street's token with its own subscription, asking for the community's key.
    theirs = {"key_id": key_id, "subscription": f"sub-{STREET}-dibao"}
    assert call(url, hub.members[STREET].token, theirs)[0] == 404


def test_an_expired_token_is_refused_by_api_and_gateway(hub: SecureHub) -> None:
    api = hub.runtimes["api"]
    member = hub.members["chaowai"]
    api_url = api.api_url + "/v1/subscriptions"
    stream_url = hub.runtimes["gateway"].gateway_url + "/v1/stream/poll?wait=0.1"
    assert call(api_url, member.token)[0] == 200
    assert call(stream_url, member.token)[0] == 200
    party = api.state.party("chaowai")
    assert party is not None
    api.state.put_party(party.model_copy(update={"token_expires_at_ms": 1}))
    try:
        deadline = time.monotonic() + 15
        answers: list[tuple[int, str]] = []
        while time.monotonic() < deadline:
            answers = [call(api_url, member.token), call(stream_url, member.token)]
            if all(status == 401 for status, _ in answers):
                break
            time.sleep(0.2)
        assert [status for status, _ in answers] == [401, 401], answers
        assert "expired" in answers[0][1]
    finally:
        current = api.state.party("chaowai")
        assert current is not None
        api.state.put_party(current.model_copy(update={"token_expires_at_ms": None}))
