"""Per-subscription rate limits and quotas; the call audit event; configuration."""

from __future__ import annotations

import orjson
import pytest

from hub.config import ConfigError, load_config
from hub.dataservice.audit import EVENT_KIND, call_event, keys_digest
from hub.dataservice.limits import CallLimits


def test_rate_limit_allows_a_second_of_calls_then_refuses() -> None:
    limits = CallLimits(daily_quota=None)
    answers = [limits.admit("s1", 5) for _ in range(8)]
    assert answers[:5] == [None] * 5
    assert answers[5:] == ["rate-limited"] * 3
    assert limits.admit("s2", 5) is None  # another subscription has its own bucket
    assert all(limits.admit("s3", None) is None for _ in range(1000))


def test_batch_cost_and_quota() -> None:
    limits = CallLimits(daily_quota=3)
    assert limits.admit("s", 10, cost=100) is None  # larger than the rate: still one call
    assert limits.admit("s", 10, cost=1) == "rate-limited"
    assert limits.admit("q", None) is None
    assert limits.admit("q", None) is None
    assert limits.admit("q", None) is None
    assert limits.admit("q", None) == "quota"


def test_audit_event_names_keys_only_by_digest() -> None:
    event = call_event(
        node="n1",
        caller="rsj",
        subscription="ds-rsj",
        resource="dibao",
        call="batch",
        keys=["110105198008018862", "110105194001011234"],
        results=1,
        outcome="ok",
        policy_version="ds-rsj@3",
        purpose="低保资格核验",
    )
    assert event["kind"] == EVENT_KIND and event["key_count"] == 2
    assert event["keys_sha256"] == keys_digest(["110105194001011234", "110105198008018862"])
    assert "110105198008018862" not in orjson.dumps(event).decode()
    assert event["policy_version"] == "ds-rsj@3" and event["results"] == 1


def test_config_names_the_bad_field() -> None:
    base = {"kafka.bootstrap_servers": "127.0.0.1:9092", "state_dir": "/tmp/x"}
    config = load_config(
        env={}, overrides={**base, "data_service.indexes": {"dibao": ["category"]}}
    )
    assert config.data_service.indexes == {"dibao": ("category",)}
    with pytest.raises(ConfigError, match=r"data_service\.indexes"):
        load_config(env={}, overrides={**base, "data_service.indexes": {"dibao": ["no such"]}})
    with pytest.raises(ConfigError, match=r"data_service\.max_batch_keys"):
        load_config(env={}, overrides={**base, "data_service.max_batch_keys": 0})


def test_call_tally_reaches_prometheus_on_flush() -> None:
    from prometheus_client import REGISTRY

    from hub.dataservice.http import CallTally

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    calls = {"resource": "tally-test", "kind": "verify", "outcome": "ok"}
    before_calls = sample("govhub_dataservice_calls_total", calls)
    before_count = sample("govhub_dataservice_call_seconds_count", {"kind": "verify"})
    before_fast = sample(
        "govhub_dataservice_call_seconds_bucket", {"kind": "verify", "le": "0.001"}
    )
    before_sum = sample("govhub_dataservice_call_seconds_sum", {"kind": "verify"})
    tally = CallTally()
    for seconds in (0.0002, 0.0009, 0.003, 7.0):
        tally.add("tally-test", "verify", "ok", seconds)
    tally.add("tally-test", "verify", "not-found", 0.0001)
    assert sample("govhub_dataservice_calls_total", calls) == before_calls  # not yet
    tally.flush()
    assert sample("govhub_dataservice_calls_total", calls) == before_calls + 4
    assert sample("govhub_dataservice_calls_total", {**calls, "outcome": "not-found"}) >= 1
    assert sample("govhub_dataservice_call_seconds_count", {"kind": "verify"}) == before_count + 5
    assert (
        sample("govhub_dataservice_call_seconds_bucket", {"kind": "verify", "le": "0.001"})
        == before_fast + 3
    )
    assert sample("govhub_dataservice_call_seconds_sum", {"kind": "verify"}) == pytest.approx(
        before_sum + 7.0042
    )
    tally.flush()  # nothing twice
    assert sample("govhub_dataservice_calls_total", calls) == before_calls + 4


def test_the_daily_quota_counts_the_other_nodes_calls_and_resumes_after_a_restart() -> None:
    import time as _time

    from hub.dataservice.usage import UsageTotals

    day = int(_time.time()) // 86_400
    totals = UsageTotals("node-a")
    # Rows as the usage table reads them: another node's, an older day's, and this node's
    # own count written before it restarted.
    totals.apply("node-b|s", {"node": "node-b", "subscription": "s", "day": day, "calls": 3})
    totals.apply("node-c|s", {"node": "node-c", "subscription": "s", "day": day - 1, "calls": 9})
    totals.apply("node-a|s", {"node": "node-a", "subscription": "s", "day": day, "calls": 2})
    totals.apply("junk", {"no": "fields"})
    assert totals.others("s", day) == 3 and totals.own("s", day) == 2
    limits = CallLimits(daily_quota=7, others=totals.others, resume=totals.own)
    assert [limits.admit("s", None) for _ in range(3)] == [None, None, "quota"]  # 3 + 2 + 2
    assert limits.changed() == {"s": (day, 4)}
    assert limits.changed() == {}  # only what moved since
    # node-b's newer row replaces its older one (not added to it); its delete frees it.
    totals.apply("node-b|s", {"node": "node-b", "subscription": "s", "day": day, "calls": 1})
    assert totals.others("s", day) == 1
    assert limits.admit("s", None) is None and limits.admit("s", None) is None
    assert limits.admit("s", None) == "quota"
    totals.apply("node-b|s", None)
    assert totals.others("s", day) == 0
    assert limits.admit("s", None) is None
    counts = limits.changed()
    assert counts == {"s": (day, 7)}
    limits.unchanged(counts)  # a failed write offers them again
    assert limits.changed() == counts
    # Other subscriptions and other days are counted apart.
    assert limits.admit("t", None) is None
    assert totals.others("t", day) == 0
