"""Per-recipient data keys (DEKs) as stored, wrapped, in ``_govhub.keys``.

Each record is one key epoch of one recipient. The Kafka record key is
``<recipient>/<key id hex>``, so a tombstone for it deletes that epoch for good
(crypto-shredding): its frames can no longer be opened.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from hub.crypto.errors import KeyRecordError, KeyUnwrapError
from hub.crypto.frames import KEY_ID_LEN
from hub.crypto.kms import Kms
from hub.crypto.suites import PayloadSuite, new_data_key

__all__ = [
    "RECORD_VERSION",
    "DataKeyRecord",
    "new_data_key_record",
    "unwrap_context",
    "unwrap_data_key",
]

_T = TypeVar("_T")

RECORD_VERSION = 1
_CONTEXT_LABEL = b"govhub dek v1\x00"
_U16 = struct.Struct(">H")
# key id, suite, created at, not after
_CONTEXT_TAIL = struct.Struct(">16sBqq")
_FIELDS = frozenset(
    {"v", "recipient", "key_id", "suite", "wrapped", "kek_id", "created_at_ms", "not_after_ms"}
)


@dataclass(frozen=True)
class DataKeyRecord:
    """One wrapped data key; the value of a ``_govhub.keys`` record."""

    recipient: str
    key_id: bytes
    suite: PayloadSuite
    wrapped: bytes
    kek_id: str
    created_at_ms: int
    not_after_ms: int

    def __post_init__(self) -> None:
        if not 0 < len(self.recipient.encode("utf-8")) <= 0xFFFF:
            raise ValueError("recipient must be 1..65535 bytes of UTF-8")
        if len(self.key_id) != KEY_ID_LEN:
            raise ValueError(f"key_id must be {KEY_ID_LEN} bytes, got {len(self.key_id)}")
        if type(self.suite) is not PayloadSuite:
            object.__setattr__(self, "suite", PayloadSuite(self.suite))
        if not 0 <= self.created_at_ms <= self.not_after_ms < 2**63:
            raise ValueError("need 0 <= created_at_ms <= not_after_ms < 2**63")

    def kafka_key(self) -> bytes:
        return f"{self.recipient}/{self.key_id.hex()}".encode()

    def is_valid_at(self, now_ms: int) -> bool:
        """True while the key may be used to seal new frames."""
        return self.created_at_ms <= now_ms < self.not_after_ms

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": RECORD_VERSION,
                "recipient": self.recipient,
                "key_id": _b64(self.key_id),
                "suite": self.suite.name,
                "wrapped": _b64(self.wrapped),
                "kek_id": self.kek_id,
                "created_at_ms": self.created_at_ms,
                "not_after_ms": self.not_after_ms,
            },
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
        ).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> DataKeyRecord:
        """Parse a record value; raises KeyRecordError for anything malformed."""
        try:
            obj = json.loads(data)
        except (ValueError, TypeError) as exc:
            raise KeyRecordError(f"data-key record is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise KeyRecordError("data-key record must be a JSON object")
        if obj.get("v") != RECORD_VERSION:
            raise KeyRecordError(f"unsupported data-key record version {obj.get('v')!r}")
        if obj.keys() != _FIELDS:
            raise KeyRecordError(
                f"data-key record fields {sorted(obj)} do not match {sorted(_FIELDS)}"
            )
        try:
            return cls(
                recipient=_typed(obj, "recipient", str),
                key_id=_unb64(_typed(obj, "key_id", str)),
                suite=PayloadSuite[_typed(obj, "suite", str)],
                wrapped=_unb64(_typed(obj, "wrapped", str)),
                kek_id=_typed(obj, "kek_id", str),
                created_at_ms=_typed(obj, "created_at_ms", int),
                not_after_ms=_typed(obj, "not_after_ms", int),
            )
        except KeyError as exc:
            raise KeyRecordError(f"unknown payload suite {exc}") from None
        except ValueError as exc:
            raise KeyRecordError(f"invalid data-key record: {exc}") from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from None


def _typed(obj: dict[str, Any], name: str, kind: type[_T]) -> _T:
    value = obj[name]
    # bool is an int subclass; a JSON true is never a valid timestamp.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} must be {kind.__name__}")
    return value


def unwrap_context(
    recipient: str, key_id: bytes, suite: PayloadSuite, created_at_ms: int, not_after_ms: int
) -> bytes:
    """The KMS context a data key is wrapped under: label, recipient, key id, suite and
    lifetime, so a wrapped key cannot be moved to another recipient or have its lifetime
    stretched."""
    raw = recipient.encode("utf-8")
    if not 0 < len(raw) <= 0xFFFF:
        raise ValueError("recipient must be 1..65535 bytes of UTF-8")
    if len(key_id) != KEY_ID_LEN:
        raise ValueError(f"key_id must be {KEY_ID_LEN} bytes, got {len(key_id)}")
    if not 0 <= created_at_ms <= not_after_ms < 2**63:
        raise ValueError("need 0 <= created_at_ms <= not_after_ms < 2**63")
    return b"".join(
        (
            _CONTEXT_LABEL,
            _U16.pack(len(raw)),
            raw,
            _CONTEXT_TAIL.pack(key_id, suite, created_at_ms, not_after_ms),
        )
    )


def new_data_key_record(
    kms: Kms,
    recipient: str,
    suite: PayloadSuite,
    lifetime_ms: int,
    now_ms: int | None = None,
) -> tuple[DataKeyRecord, bytes]:
    """Create a fresh DEK for `recipient`; returns (record to produce, plaintext DEK)."""
    if lifetime_ms <= 0:
        raise ValueError("lifetime_ms must be positive")
    suite = PayloadSuite(suite)
    created = int(time.time() * 1000) if now_ms is None else now_ms
    key_id = os.urandom(KEY_ID_LEN)
    dek = new_data_key(suite)
    not_after = created + lifetime_ms
    context = unwrap_context(recipient, key_id, suite, created, not_after)
    record = DataKeyRecord(
        recipient=recipient,
        key_id=key_id,
        suite=suite,
        wrapped=kms.wrap(dek, context, national=suite is PayloadSuite.SM4_GCM),
        kek_id=kms.kek_id,
        created_at_ms=created,
        not_after_ms=not_after,
    )
    return record, dek


def unwrap_data_key(kms: Kms, record: DataKeyRecord) -> bytes:
    """The plaintext DEK of `record`; raises KeyUnwrapError if the KMS cannot unwrap it."""
    if not kms.holds(record.kek_id):
        raise KeyUnwrapError(
            f"key {record.kafka_key().decode()} is wrapped under KEK {record.kek_id}, "
            f"which this KMS does not hold (current KEK {kms.kek_id})"
        )
    context = unwrap_context(
        record.recipient, record.key_id, record.suite, record.created_at_ms, record.not_after_ms
    )
    dek = kms.unwrap(record.wrapped, context)
    if len(dek) != record.suite.key_len:
        raise KeyUnwrapError(
            f"unwrapped key has {len(dek)} bytes, {record.suite.name} needs {record.suite.key_len}"
        )
    return dek
