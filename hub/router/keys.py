"""Recipient data keys as the router uses them.

The router creates a data key per recipient lazily, wraps it under the hub KEK and writes
the wrapped record into the same transaction as the first frames that use it. Keys
created inside a transaction that aborts are forgotten, so no committed frame ever
refers to a key that was not committed with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hub.crypto.frames import FrameSealer
from hub.crypto.keys import DataKeyRecord, new_data_key_record
from hub.crypto.kms import Kms
from hub.crypto.suites import PayloadSuite

# Random 96-bit nonces: stay far below the 2**32 invocations NIST SP 800-38D allows.
DEFAULT_MAX_USES = 2**28

SUITES = {"AES-256-GCM": PayloadSuite.AES_256_GCM, "SM4-GCM": PayloadSuite.SM4_GCM}


@dataclass(slots=True)
class _ActiveKey:
    record: DataKeyRecord
    sealer: FrameSealer
    uses: int = 0


class KeyBook:
    def __init__(
        self,
        kms: Kms,
        lifetime_ms: int,
        default_suite: PayloadSuite = PayloadSuite.AES_256_GCM,
        max_uses: int = DEFAULT_MAX_USES,
        sealer_factory: Callable[[PayloadSuite, bytes], FrameSealer] = FrameSealer,
    ) -> None:
        self._kms = kms
        self._sealer_factory = sealer_factory
        self._lifetime_ms = lifetime_ms
        self._default_suite = default_suite
        self._max_uses = max_uses
        self._active: dict[tuple[str, PayloadSuite], _ActiveKey] = {}
        self._pending: list[tuple[tuple[str, PayloadSuite], DataKeyRecord]] = []
        self._inflight: list[tuple[tuple[str, PayloadSuite], DataKeyRecord]] = []

    def sealer_for(
        self, recipient: str, suite: PayloadSuite | None = None
    ) -> tuple[DataKeyRecord, FrameSealer]:
        suite = suite or self._default_suite
        slot = (recipient, suite)
        active = self._active.get(slot)
        now_ms = int(time.time() * 1000)
        if active is None or active.uses >= self._max_uses or now_ms >= active.record.not_after_ms:
            record, dek = new_data_key_record(
                self._kms, recipient, suite, self._lifetime_ms, now_ms=now_ms
            )
            active = _ActiveKey(record, self._sealer_factory(suite, dek))
            self._active[slot] = active
            self._pending.append((slot, record))
        active.uses += 1
        return active.record, active.sealer

    def take_new_records(self) -> list[DataKeyRecord]:
        """Key records created since the last call, to write into the open transaction.
        They stay *in flight* until :meth:`commit` (that transaction committed) or
        :meth:`abort`."""
        taken = [record for _, record in self._pending]
        self._inflight.extend(self._pending)
        self._pending.clear()
        return taken

    def commit(self) -> None:
        """The transaction holding the in-flight key records committed. Keys created since
        (for the next transaction) stay pending."""
        self._inflight.clear()

    def abort(self) -> None:
        """Forget every key not committed yet — in flight and pending — so no frame is
        ever sealed again under a key whose record was not committed."""
        for slot, record in (*self._inflight, *self._pending):
            active = self._active.get(slot)
            if active is not None and active.record.key_id == record.key_id:
                del self._active[slot]
        self._inflight.clear()
        self._pending.clear()

    def retire(self, recipient: str, key_id_hex: str) -> bool:
        """Stop using one key (it was deleted); True if it was the recipient's active key."""
        retired = False
        for slot, active in list(self._active.items()):
            if slot[0] == recipient and active.record.key_id.hex() == key_id_hex:
                del self._active[slot]
                retired = True
        return retired

    def rotate(self, recipient: str | None = None) -> int:
        """Retire keys early (policy change): for one recipient or for all. The next frame
        gets a new key; returns how many active keys were retired."""
        retired = 0
        for slot in list(self._active):
            if recipient is None or slot[0] == recipient:
                del self._active[slot]
                retired += 1
        return retired
