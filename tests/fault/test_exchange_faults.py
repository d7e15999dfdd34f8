"""Faults that must not lose or duplicate (issue #6), on a city-sized exchange.

100,000 records of three resources (低保, 社保参保, 网格事件) flow to 1,089 live recipients
(1,000 communities, 100 streets, 10 districts, 4 departments; some grants dormant on
purpose) through routers that run as ``govhub serve --roles router`` processes. Each test
inflicts one kind of fault while the stream flows:

- a router is killed with SIGKILL several times and restarted each time;
- two routers share the group and one is killed while the group rebalances — twice, the
  second time with three routers — and the killed one restarts;
- the single broker restarts: once cleanly, once killed with SIGKILL.

Afterwards every frame of the delivery topic is opened (``delivery_check``): per recipient,
the record ids must equal exactly what its grants entitle it to, and each entry must be the
right whole record or masked/projected view. The first test also reads four recipients'
deliveries through the subscriber SDK and the api's key release.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from connectors.sdk.client import SubscriberClient, SubscriberSettings
from connectors.sinks.base import Cursor, DeliveredRecord, Sink
from hub.localkafka import LocalKafka, find_free_base_port
from hub.localkafka.ports import first_taken
from hub.watchdog import HUNG_EXIT_CODE
from tests.fault.exchange import Exchange, open_exchange
from tests.fault.routers import GroupProbe

pytestmark = pytest.mark.integration

COUNTS = {"dibao": 34_000, "shebao": 33_000, "wangge": 33_000}
# Published at a steady pace over about 12 s, so every fault lands while records are still
# arriving, whatever the speed of the machine.
RATE = 8_000
KILLS = 3
# Read through the SDK: a community, its street and district (国密 suite for 低保), and a
# district department.
SDK_SAMPLE = ("c-110105001007", "s-110105001", "d-110105", "cy-wjw")


def report_line(name: str, text: str) -> None:
    print(f"\n[{name}] {text}")


def assert_exact(exchange: Exchange, name: str) -> None:
    report = exchange.check()
    report_line(name, report.summary())
    assert not report.problems, report.failure()
    assert report.records == sum(COUNTS.values())
    assert report.recipients == sum(1 for ids in exchange.expected.values() if ids) >= 1000
    assert report.entries == sum(len(ids) for ids in exchange.expected.values())


def into_a_transaction(exchange: Exchange, probe: GroupProbe) -> None:
    """Wait for the moment the routers have just written frames of a transaction that is
    not committed yet (or, failing that, a random moment)."""
    if not probe.wait_for_open_transaction(exchange.runtime.state.topics.delivery):
        time.sleep(random.uniform(0.0, 0.1))


# -- kill -9, again and again -----------------------------------------------------------------
class Collected(Sink):
    """Keeps what the SDK hands over in memory."""

    def __init__(self) -> None:
        self.records: list[DeliveredRecord] = []

    def load_cursor(self) -> Cursor | None:
        return None

    def write(self, records: Sequence[DeliveredRecord], cursor: Cursor) -> None:
        self.records.extend(records)


def read_through_sdk(exchange: Exchange, recipients: Sequence[str]) -> dict[str, Collected]:
    """Run the subscriber SDK for each recipient until its partition has gone quiet."""
    sinks: dict[str, Collected] = {}
    errors: dict[str, BaseException] = {}

    def run(recipient: str) -> None:
        member = exchange.world.members[recipient]
        assert member.token is not None and member.private_key is not None
        settings = SubscriberSettings(
            bootstrap_servers=exchange.bootstrap,
            recipient=recipient,
            api_url=exchange.runtime.api_url,
            token=member.token,
            private_key=member.private_key,
            topic_prefix=exchange.config.kafka.topic_prefix,
        )
        try:
            SubscriberClient(settings, sinks[recipient]).run(threading.Event(), idle_timeout=2.0)
        except BaseException as exc:
            errors[recipient] = exc

    threads = []
    for recipient in recipients:
        sinks[recipient] = Collected()
        threads.append(threading.Thread(target=run, args=(recipient,), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, f"subscriber SDK failed: {errors}"
    return sinks


def test_router_killed_mid_stream_again_and_again(kafka_bootstrap: str, tmp_path: Path) -> None:
    with open_exchange(kafka_bootstrap, tmp_path, COUNTS, SDK_SAMPLE) as exchange:
        total = len(exchange.rows)
        router = exchange.router(0).start()
        probe = exchange.probe()
        kills = []
        try:
            with exchange.publish_in_background(RATE) as publisher:
                done = 0
                for kill in range(KILLS):
                    target = max(total * (kill + 1) // (KILLS + 2), done + 1)
                    probe.wait_committed(target, 120, exchange.routers)
                    into_a_transaction(exchange, probe)
                    router.kill()
                    # The successor fences the killed instance's open transaction; only
                    # then are the group's offsets stable enough to read.
                    router.start()
                    at_kill = probe.committed()
                    assert done < at_kill < total, "the kill did not land mid-stream"
                    kills.append(at_kill)
                    done = at_kill
                publisher.join()
            probe.wait_committed(total, 180, exchange.routers)
            router.stop()
        finally:
            probe.close()
        report_line("kill -9", f"router killed after {kills} of {total:,} records were routed")
        assert_exact(exchange, "kill -9")

        # The same deliveries through the real subscriber path: key release over the api
        # (HPKE), the SDK's decryption, replay guard and Avro decoding.
        sdk = read_through_sdk(exchange, SDK_SAMPLE)
        for recipient, sink in sdk.items():
            ids = [r.record_id for r in sink.records]
            assert len(ids) == len(set(ids)), f"{recipient}: duplicates through the SDK"
            assert set(ids) == exchange.expected[recipient], f"{recipient}: SDK set differs"
            prefixes = tuple(g.prefix for g in exchange.world.grants_of(recipient))
            assert all(r.data["region_code"].startswith(prefixes) for r in sink.records)
        counts = {r: len(s.records) for r, s in sdk.items()}
        report_line("kill -9", f"through the SDK and key release: {counts}")


# -- kill -9 during a rebalance ----------------------------------------------------------------
def test_router_killed_during_rebalance(kafka_bootstrap: str, tmp_path: Path) -> None:
    with open_exchange(kafka_bootstrap, tmp_path, COUNTS) as exchange:
        total = len(exchange.rows)
        first = exchange.router(0).start()
        probe = exchange.probe()
        events = []
        try:
            with exchange.publish_in_background(RATE) as publisher:
                probe.wait_committed(total // 10, 120, exchange.routers)
                victims = [first]
                for newcomer_index in (1, 2):
                    # A router joins; while the group rebalances, an older one dies.
                    newcomer = exchange.router(newcomer_index)
                    newcomer.launch()
                    state = probe.wait_for_rebalance()
                    victim = victims[-1]
                    victim.kill()
                    events.append(f"{victim.name} killed while {state.name}")
                    newcomer.wait_ready()
                    victim.start()  # same transactional id: fences its zombie
                    at_kill = probe.committed()
                    assert at_kill < total, "the kill did not land mid-stream"
                    events.append(f"at {at_kill:,} of {total:,}")
                    victims.append(newcomer)
                    # Routing goes on after the kill before anything else happens.
                    probe.wait_committed(at_kill + 1, 120, exchange.routers)
                publisher.join()
            probe.wait_committed(total, 180, exchange.routers)
            # Three routers share the work: each owns source partitions.
            owned = probe.wait_stable(members=3)
            events.append(f"partitions per router {sorted(owned.values())}")
            assert all(count >= 1 for count in owned.values()), owned
            for router in exchange.routers:
                router.stop()
        finally:
            probe.close()
        report_line("rebalance", "; ".join(events))
        assert_exact(exchange, "rebalance")


# -- the broker restarts -----------------------------------------------------------------------
# A router that has not caught up this long after the broker is back has stalled.
STALL_S = 30.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A single-node broker for this test alone, so it can be restarted. A short broker
    session lets a broker killed with SIGKILL register again within seconds (the default
    makes it wait 9 s for its previous registration to expire)."""
    broker = LocalKafka(
        tmp_path / "kafka",
        base_port=find_free_base_port(1),
        heap_mb=512,
        extra_config={"broker.heartbeat.interval.ms": "500", "broker.session.timeout.ms": "2000"},
    )
    try:
        yield broker
    finally:
        broker.down()


def restart_broker(broker: LocalKafka, hard: bool) -> float:
    """Stop the broker (SIGTERM, or SIGKILL when ``hard``) and start it on the same data
    and ports; returns how long it was away."""
    started = time.monotonic()
    if hard:
        (node,) = broker.status().nodes
        assert node.pid is not None
        os.kill(node.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        ports = broker.layout.ports(node.node_id)
        # Gone, and its sockets released (closing connections hold the port briefly).
        while broker.running_pid(node.node_id) is not None or first_taken(ports) is not None:
            assert time.monotonic() < deadline, "the broker survived SIGKILL"
            time.sleep(0.05)
    else:
        broker.down()
    broker.up(timeout=120)
    return time.monotonic() - started


def test_broker_restarts_mid_stream(own_broker: LocalKafka, tmp_path: Path) -> None:
    bootstrap = own_broker.up(timeout=180)
    stalls: list[str] = []
    with open_exchange(bootstrap, tmp_path, COUNTS) as exchange:
        total = len(exchange.rows)
        router = exchange.router(0).start()
        probe = exchange.probe()
        events = []

        def ride_out(target: int) -> int:
            """Routing must go on once the broker is back. A router that stalls is
            noted as a failure, then restarted as a supervisor would, so the records'
            fate is still checked."""
            try:
                return probe.wait_committed(target, STALL_S, exchange.routers)
            except AssertionError as exc:
                if router.process.poll() == HUNG_EXIT_CODE:
                    # The router's watchdog ended it after a transactional call hung past
                    # its timeout: by design, for the supervisor (here: the test) to
                    # restart it. Not a stall.
                    router.start()
                    events.append("router exited after a hung call and was restarted")
                    return probe.wait_committed(target, 120, exchange.routers)
                stalls.append(str(exc))
                router.kill()
                router.start()
                events.append("stalled router restarted")
                return probe.wait_committed(target, 120, exchange.routers)

        try:
            with exchange.publish_in_background(RATE) as publisher:
                for fraction, hard in ((4, False), (2, True)):
                    at = ride_out(total // fraction)
                    into_a_transaction(exchange, probe)
                    away = restart_broker(own_broker, hard)
                    kind = "kill -9" if hard else "clean restart"
                    events.append(f"{kind} at {at:,} of {total:,}, away {away:.1f}s")
                ride_out(total * 3 // 4)
                publisher.join()
            ride_out(total)
            router.stop()
        finally:
            probe.close()
        report_line("broker restart", "; ".join(events))
        assert_exact(exchange, "broker restart")
    assert not stalls, "routing stopped after a broker restart:\n" + "\n\n".join(stalls)
