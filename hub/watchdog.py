"""Ending a process whose transactional Kafka call hangs.

librdkafka can wait on a broker that went away without honouring a call's own timeout.
A role that holds a transactional id (router, audit notary) then neither progresses nor
lets another instance take over; exiting is safe — a restarted instance with the same
transactional id fences the open transaction, which the broker aborts, and re-reads from
the last commit — so the process exits with :data:`HUNG_EXIT_CODE` for its supervisor.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

HUNG_GRACE_S = 5.0
HUNG_EXIT_CODE = 70


class Watchdog:
    """Exits the process when a watched call runs far past its own timeout."""

    def __init__(self, role: str, grace_s: float = HUNG_GRACE_S) -> None:
        self._role = role
        self._grace = grace_s
        self._calls: dict[int, tuple[str, float]] = {}  # thread -> (call, hung after)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, call: str, timeout_s: float) -> Iterator[None]:
        """Watch one call that has its own ``timeout_s``: hung means well past it."""
        token = threading.get_ident()
        with self._lock:
            self._calls[token] = (call, time.monotonic() + timeout_s + self._grace)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"govhub-{self._role}-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self._lock:
                hung = [c for c, after in self._calls.values() if now > after]
            if hung:
                log.critical(
                    "%s transaction call %s hung past its timeout; exiting (code %d) "
                    "for the supervisor to restart it",
                    self._role,
                    hung[0],
                    HUNG_EXIT_CODE,
                )
                logging.shutdown()
                os._exit(HUNG_EXIT_CODE)
