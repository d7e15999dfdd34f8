from typing import Any

from hub.subscriptions import lifecycle
from hub.subscriptions import metrics as sub_metrics
from hub.subscriptions.deadlines import WorkingCalendar
from hub.subscriptions.model import Subscription, SubscriptionStatus
from hub.subscriptions.sweeper import Sweeper
from tests.unit.subscriptions.builders import CONDITIONAL, STREET, T0, UNCONDITIONAL, request

DAY = 86_400_000


class FakeState:
    """The part of ControlState the sweeper uses, in memory."""

    def __init__(self, subs: list[Subscription]) -> None:
        self.rows = {s.id: s for s in subs}
        self.generation = 0
        self.writes = 0
        self.subscriptions = self  # the table catch_up writes its marker to

    def put(self, key: str, value: object, timeout: float = 10.0) -> None:
        assert value is None  # only the catch-up marker

    def subscription_list(self) -> list[Subscription]:
        return list(self.rows.values())

    def subscription(self, sub_id: str) -> Subscription | None:
        return self.rows.get(sub_id)

    def put_subscription(self, sub: Subscription) -> None:
        self.rows[sub.id] = sub
        self.generation += 1
        self.writes += 1


def gauge(metric: Any, label: str) -> float:
    return float(metric.labels(label)._value.get())


def test_sweeper_writes_expiry_and_counts_overdue_requests() -> None:
    cal = WorkingCalendar()
    expiring = lifecycle.open_request(
        "sub-exp", request(duration_days=1), STREET, UNCONDITIONAL, (), cal, T0
    )
    pending = lifecycle.open_request(
        "sub-pend", request(jurisdiction="110105001001"), STREET, CONDITIONAL, (), cal, T0
    )
    state = FakeState([expiring, pending])
    clock = [T0 + 1000]
    told: list[Subscription] = []
    sweeper = Sweeper(state, lambda: clock[0], told.append)  # type: ignore[arg-type]
    assert sweeper.tick() == 0
    assert gauge(sub_metrics.SUBSCRIPTIONS_BY_STATE, "active") == 1
    assert gauge(sub_metrics.SUBSCRIPTIONS_BY_STATE, "checked") == 1
    assert gauge(sub_metrics.SUBSCRIPTIONS_OVERDUE, "answer") == 0
    clock[0] += 1000
    assert sweeper.tick() == 0 and state.writes == 0  # nothing changed: nothing re-read
    clock[0] = T0 + DAY + 1  # past the expiry
    assert sweeper.tick() == 1
    assert state.rows["sub-exp"].status is SubscriptionStatus.EXPIRED
    assert state.rows["sub-exp"].history[-1].at_ms == T0 + DAY
    assert told == [state.rows["sub-exp"]]  # the change goes to the audit trail too
    clock[0] = pending.answer_due_ms + 1  # type: ignore[operator]
    sweeper.tick()
    assert gauge(sub_metrics.SUBSCRIPTIONS_OVERDUE, "answer") == 1
    assert gauge(sub_metrics.SUBSCRIPTIONS_BY_STATE, "expired") == 1
