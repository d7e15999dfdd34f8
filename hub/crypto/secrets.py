"""The hub's own secrets in ``_govhub.keys``, and moving wrapped keys to a new KEK.

Besides the data keys the routers create, the hub keeps a few secrets of its own in the
keys table, each one row wrapped under the KEK with a context of its own: the pseudonym
root, the gateway's resume-ticket key, the audit signing key, the console's session key.
They are declared here as :class:`HubSecret` so that every role creates and reads them the
same way, and so that :func:`rewrap` knows each one's context after a KEK rotation.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from hub.crypto.errors import KeyRecordError, KeyUnwrapError
from hub.crypto.keys import DataKeyRecord, unwrap_context, unwrap_data_key
from hub.crypto.kms import Kms
from hub.crypto.suites import PayloadSuite

__all__ = [
    "AUDIT_SIGNING",
    "CONSOLE_SESSION",
    "GATEWAY_TICKET",
    "HUB_SECRETS",
    "PSEUDONYM_ROOT",
    "HubSecret",
    "RewrapReport",
    "rewrap",
]

log = logging.getLogger(__name__)


class KeysTable(Protocol):
    """What this module needs of the keys table (a ``CompactedTable``)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def items(self) -> list[tuple[str, dict[str, Any]]]: ...

    def put(
        self, key: str, value: Mapping[str, Any] | None, timeout: float = ..., read_back: bool = ...
    ) -> None: ...

    def put_many(
        self,
        items: Iterable[tuple[str, Mapping[str, Any] | None]],
        timeout: float = ...,
        read_back: bool = ...,
    ) -> None: ...


@dataclass(frozen=True)
class HubSecret:
    """One secret of the hub, a row ``{wrapped, kek_id, created_at_ms, ...}`` of the keys
    table under ``row_key``, wrapped with ``context``."""

    row_key: str
    context: bytes

    def ensure(
        self,
        keys: KeysTable,
        kms: Kms,
        make: Callable[[], tuple[bytes, dict[str, Any]]] | None = None,
    ) -> bytes:
        """The secret, created on first use (blocks until written and read back).

        ``make`` gives a new secret and extra public columns (default: 32 random bytes).
        Two processes creating it at once both write; the table keeps the last, and both
        then read that one back."""
        if keys.get(self.row_key) is None:
            secret, extra = make() if make is not None else (os.urandom(32), {})
            keys.put(
                self.row_key,
                {
                    **extra,
                    "wrapped": base64.b64encode(kms.wrap(secret, self.context)).decode(),
                    "kek_id": kms.kek_id,
                    "created_at_ms": int(time.time() * 1000),
                },
            )
        stored = self.load(keys, kms)
        if stored is None:
            raise KeyUnwrapError(f"{self.row_key} was written but is not in the keys table")
        return stored

    def load(self, keys: KeysTable, kms: Kms) -> bytes | None:
        """The secret, or ``None`` while the hub has none."""
        row = keys.get(self.row_key)
        return None if row is None else self.unwrap_row(row, kms)

    def unwrap_row(self, row: Mapping[str, Any], kms: Kms) -> bytes:
        try:
            wrapped = base64.b64decode(str(row["wrapped"]), validate=True)
        except (KeyError, binascii.Error) as exc:
            raise KeyUnwrapError(f"{self.row_key}: malformed row ({exc})") from None
        return kms.unwrap(wrapped, self.context)


PSEUDONYM_ROOT = HubSecret("_hub/pseudonym", b"govhub pseudonym root v1")
GATEWAY_TICKET = HubSecret("_hub/gateway-ticket", b"govhub gateway ticket key v1")
AUDIT_SIGNING = HubSecret("_hub/audit-signing", b"govhub audit signing key v1")
CONSOLE_SESSION = HubSecret("_hub/console-session", b"govhub console session key v1")
HUB_SECRETS = {
    s.row_key: s for s in (PSEUDONYM_ROOT, GATEWAY_TICKET, AUDIT_SIGNING, CONSOLE_SESSION)
}


@dataclass
class RewrapReport:
    """What :func:`rewrap` found and did (or, dry, would do)."""

    current_kek: str
    rewrapped: dict[str, int] = field(default_factory=dict)  # old KEK id -> keys moved
    already_current: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (row key, why)

    @property
    def moved(self) -> int:
        return sum(self.rewrapped.values())


def rewrap(keys: KeysTable, kms: Kms, dry_run: bool = False) -> RewrapReport:
    """Wrap every key of the table that is not under the current KEK again under it.

    Data keys keep their id, recipient, suite and validity (their unwrap context), so
    frames sealed under them stay readable; only ``wrapped`` and ``kek_id`` change. Rows
    this KMS cannot unwrap (a KEK it does not hold, a damaged row) are listed, never
    dropped; deleted (crypto-shredded) keys are absent from the table and stay so."""
    report = RewrapReport(kms.kek_id)
    moved: list[tuple[str, Mapping[str, Any] | None]] = []
    for row_key, row in keys.items():
        old_kek = str(row.get("kek_id", ""))
        if old_kek == kms.kek_id:
            report.already_current += 1
            continue
        try:
            new_row = _rewrapped(row_key, row, kms)
        except (KeyUnwrapError, KeyRecordError, ValueError) as exc:
            report.unreadable.append((row_key, str(exc)))
            continue
        moved.append((row_key, new_row))
        report.rewrapped[old_kek] = report.rewrapped.get(old_kek, 0) + 1
    if moved and not dry_run:
        keys.put_many(moved, timeout=120.0, read_back=False)  # every row acknowledged
    log.info(
        "keys rewrapped" if not dry_run else "keys to rewrap",
        extra={
            "kek_id": kms.kek_id,
            "moved": report.moved,
            "current": report.already_current,
            "unreadable": len(report.unreadable),
        },
    )
    return report


def _rewrapped(row_key: str, row: Mapping[str, Any], kms: Kms) -> dict[str, Any]:
    secret = HUB_SECRETS.get(row_key)
    if secret is not None:
        plain = secret.unwrap_row(row, kms)
        wrapped = kms.wrap(plain, secret.context)
        return {**row, "wrapped": base64.b64encode(wrapped).decode(), "kek_id": kms.kek_id}
    if "recipient" in row and "key_id" in row:
        record = DataKeyRecord.from_json(orjson.dumps(dict(row)))
        dek = unwrap_data_key(kms, record)
        context = unwrap_context(
            record.recipient,
            record.key_id,
            record.suite,
            record.created_at_ms,
            record.not_after_ms,
        )
        national = record.suite is PayloadSuite.SM4_GCM
        moved = DataKeyRecord(
            recipient=record.recipient,
            key_id=record.key_id,
            suite=record.suite,
            wrapped=kms.wrap(dek, context, national=national),
            kek_id=kms.kek_id,
            created_at_ms=record.created_at_ms,
            not_after_ms=record.not_after_ms,
        )
        doc: dict[str, Any] = orjson.loads(moved.to_json())
        return doc
    raise ValueError(f"{row_key}: not a data key and not one of the hub's secrets")
