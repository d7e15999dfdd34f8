"""Records what the clock changes and keeps the workflow gauges current.

An ``approved`` subscription becomes active at its start and an active one expires at its
end without anyone writing: routers already act on the clock (their routing tables are
valid until the next start or expiry). The sweeper writes the change down, with the event
stamped at the time of the change itself, so the history is complete and two api instances
sweeping at once write the same record. It also recomputes the gauges (by state, overdue).
It wakes often but only re-reads the subscriptions when the control state changed or a
known start, expiry or deadline passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hub.state import ControlState
from hub.subscriptions import metrics
from hub.subscriptions.lifecycle import settle
from hub.subscriptions.model import PENDING_STATES, Subscription, SubscriptionStatus, now_ms
from hub.subscriptions.store import catch_up

log = logging.getLogger(__name__)

_STAGES = {SubscriptionStatus.REQUESTED: "check", SubscriptionStatus.CHECKED: "answer"}


class Sweeper:
    def __init__(
        self,
        state: ControlState,
        clock: Callable[[], int] = now_ms,
        on_change: Callable[[Subscription], None] | None = None,
    ) -> None:
        self._state = state
        self._clock = clock
        self._on_change = on_change  # told of every change written (the audit trail)
        self._generation = -1
        self._next_ms: int | None = None

    def tick(self) -> int:
        """One sweep if anything may have changed; returns the number of records written."""
        at_ms = self._clock()
        generation = self._state.generation
        if generation == self._generation and (self._next_ms is None or at_ms < self._next_ms):
            return 0
        subscriptions = self._state.subscription_list()
        due = [sub.id for sub in subscriptions if settle(sub, at_ms) is not None]
        written = 0
        if due:
            # Another instance may have revoked or suspended one of them meanwhile.
            catch_up(self._state.subscriptions)
        for sub_id in due:
            current = self._state.subscription(sub_id)
            settled = None if current is None else settle(current, at_ms)
            if settled is not None:
                self._state.put_subscription(settled)
                written += 1
                log.info("subscription %s is %s", sub_id, settled.status.value)
                if self._on_change is not None:
                    self._on_change(settled)
        self._generation = generation
        self._next_ms = _next_event(subscriptions, at_ms)
        _update_gauges(subscriptions, at_ms)
        return written


def _next_event(subscriptions: list[Subscription], at_ms: int) -> int | None:
    times: list[int] = []
    for sub in subscriptions:
        change = sub.next_change_ms(at_ms)
        if change is not None:
            times.append(change)
        due = sub.due_ms()
        if due is not None and due >= at_ms:
            times.append(due + 1)  # the moment it becomes overdue
    return min(times) if times else None


def _update_gauges(subscriptions: list[Subscription], at_ms: int) -> None:
    by_state = dict.fromkeys(SubscriptionStatus, 0)
    overdue = dict.fromkeys(_STAGES.values(), 0)
    for sub in subscriptions:
        by_state[sub.effective_status(at_ms)] += 1
        if sub.status in PENDING_STATES and sub.overdue(at_ms):
            overdue[_STAGES[sub.status]] += 1
    for status, count in by_state.items():
        metrics.SUBSCRIPTIONS_BY_STATE.labels(status.value).set(count)
    for stage, count in overdue.items():
        metrics.SUBSCRIPTIONS_OVERDUE.labels(stage).set(count)
