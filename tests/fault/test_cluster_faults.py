"""Faults on a three-broker cluster that must lose, duplicate and leak nothing (issue #10).

100,000 records of three resources enter through the departments' connectors and reach
1,000+ recipients through two routers and two gateways, into a sink per recipient (see
``cluster``). The stream is fed in five parts; during each part one fault strikes:

1. a broker is killed with SIGKILL (the leader of the first delivery partition) and
   brought back;
2. a router is killed with SIGKILL while it has a transaction open, and restarted;
3. a gateway is killed with SIGKILL, and restarted: its subscribers go to the other one;
4. the api restarts (subscribers fetch their keys from it);
5. a broker is paused with SIGSTOP past its session timeout, then resumed.

After each part, once the sinks have settled: every recipient's sink holds exactly the
records the part's rows entitle it to — none lost, none twice, none outside its
jurisdiction, each the right view — checked by record id; the audit chain verifies
(signatures, links, every event chained, the previous verification's signed heads still
on it); and the routers' audit events name exactly what each sink holds.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.audit.verify import anchors_of
from tests.fault.cityworld import entitlements, generate_rows
from tests.fault.cluster import MIN_INSYNC, REPLICAS, ClusterHub, with_connector_ids
from tests.fault.routers import GroupProbe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

COUNTS = {"dibao": 34_000, "shebao": 33_000, "wangge": 33_000}
RATE = 2_500  # records per second into the connectors' files
PAUSE_S = 8.0  # a paused broker: past its 2 s session, and the routers' 6 s session


def report_line(name: str, text: str) -> None:
    print(f"\n[cluster] {name}: {text}")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[ClusterHub]:
    """A cluster of its own: a broker of it is killed and paused."""
    cluster = ClusterHub(tmp_path, COUNTS)
    try:
        cluster.start(RATE)
        yield cluster
    finally:
        cluster.stop()


def kill_a_broker(hub: ClusterHub) -> str:
    victim = hub.brokers.leader_of(hub.topics.delivery)
    hub.brokers.kill(victim)
    time.sleep(3.0)  # the stream goes on on two brokers
    began = time.monotonic()
    hub.brokers.restart()
    return f"broker {victim} killed, back after {time.monotonic() - began + 3.0:.1f} s"


def kill_a_router(hub: ClusterHub) -> str:
    probe = GroupProbe(
        hub.config.kafka.bootstrap_servers, hub.config.router.group_id, hub.source_topics.values()
    )
    try:
        open_txn = probe.wait_for_open_transaction(hub.topics.delivery)
    finally:
        probe.close()
    router = hub.processes["router-0"]
    router.kill()
    router.start(timeout=120)
    return "router-0 killed " + ("with a transaction open" if open_txn else "mid-stream")


def kill_a_gateway(hub: ClusterHub) -> str:
    gateway = hub.processes["gateway-0"]
    gateway.kill()
    time.sleep(2.0)
    gateway.start(timeout=120)
    return "gateway-0 killed, restarted after 2 s"


def restart_the_api(hub: ClusterHub) -> str:
    hub.stopped.add("api")
    try:
        hub.api.stop()
        hub.api.start(timeout=120)
    finally:
        hub.stopped.discard("api")
    return "api stopped and started"


def pause_a_broker(hub: ClusterHub) -> str:
    victim = hub.brokers.leader_of(hub.topics.audit)
    with hub.brokers.paused(victim):
        time.sleep(PAUSE_S)
    return f"broker {victim} paused for {PAUSE_S:.0f} s"


FAULTS: tuple[tuple[str, Callable[[ClusterHub], str]], ...] = (
    ("broker kill -9", kill_a_broker),
    ("router kill -9", kill_a_router),
    ("gateway kill -9", kill_a_gateway),
    ("api restart", restart_the_api),
    ("broker SIGSTOP", pause_a_broker),
)


def test_every_fault_on_a_three_broker_cluster(hub: ClusterHub) -> None:
    started = time.monotonic()
    rows = with_connector_ids(generate_rows(hub.world, COUNTS))
    topics = [*hub.source_topics.values(), hub.topics.delivery, hub.topics.audit]
    replication = hub.brokers.replication(topics)
    assert all(counts == {REPLICAS} for counts in replication.values()), replication
    assert len(hub.subscribers.recipients) >= 1000
    rng = random.Random(10)
    anchors = None
    part = len(rows) // len(FAULTS)
    for n, (name, inflict) in enumerate(FAULTS):
        end = len(rows) if n == len(FAULTS) - 1 else (n + 1) * part
        chunk = rows[n * part : end]
        hub.feeder.feed(chunk)
        # The fault strikes while this part streams.
        time.sleep(len(chunk) / RATE * rng.uniform(0.25, 0.5))
        what = inflict(hub)
        hub.supervise()
        hub.feeder.join(300)
        fed = rows[:end]
        expected = entitlements(hub.world, fed)
        took = hub.settle(expected)
        check = hub.check(fed)
        report_line(name, f"{what}; settled {took:.1f} s after feeding; {check.summary()}")
        assert not check.problems, "\n".join(check.problems)
        assert check.recipients >= 1000 or n < len(FAULTS) - 1

        audit = hub.audit(anchors)
        assert audit.ok, [str(f) for f in audit.findings]
        assert audit.signatures_checked
        summary = audit.to_json()
        anchors = anchors_of(summary)
        assert anchors, "no signed checkpoint yet"
        audited = hub.audited_deliveries()
        mismatched = [
            recipient
            for recipient, sink in hub.subscribers.sinks.items()
            if audited.get(recipient, Counter()) != Counter(r.record_id for r in sink.records)
        ]
        assert not mismatched, f"audit events differ from the sinks for {mismatched[:5]}"
        report_line(
            name,
            "audit trail intact: "
            + ", ".join(
                f"p{p} {s['events']} events/{s['checkpoints']} checkpoints"
                for p, s in summary["partitions"].items()
            ),
        )
    report_line(
        "total",
        f"{time.monotonic() - started:.0f} s; {'; '.join(hub.events) or 'no unplanned restarts'}; "
        f"subscribers {hub.subscribers.stats()}; min.insync.replicas {MIN_INSYNC}",
    )
