"""Metrics of the subscription workflow (exported by every api instance).

Gauges are recomputed from the control state, so every api instance reports the same
values: aggregate them with ``max``, not ``sum``. Counters count what this instance did.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SUBSCRIPTIONS_BY_STATE = Gauge(
    "govhub_subscriptions_requests",
    "Subscriptions (requests and grants) by effective state",
    ["state"],
)
SUBSCRIPTIONS_OVERDUE = Gauge(
    "govhub_subscriptions_overdue",
    "Requests past their working-day deadline, by the stage they wait in",
    ["stage"],
)
SUBSCRIPTIONS_DECISIONS = Counter(
    "govhub_subscriptions_decisions_total",
    "Decisions on subscription requests",
    ["decision"],
)
SUBSCRIPTIONS_REVOCATIONS = Counter(
    "govhub_subscriptions_revocations_total",
    "Grants ended early: revoked by a manager or withdrawn by the subscriber",
    ["by"],
)
SUBSCRIPTIONS_SUSPENSIONS = Counter("govhub_subscriptions_suspensions_total", "Grants suspended")
