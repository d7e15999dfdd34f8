from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.crypto import (
    CryptoError,
    DataKeyRecord,
    KeyRecordError,
    KeyUnwrapError,
    LocalFileKms,
    PayloadSuite,
    new_data_key_record,
    unwrap_data_key,
)

NOW = 1_700_000_000_000
DAY = 86_400_000


@pytest.fixture
def kms(tmp_path: Path) -> LocalFileKms:
    return LocalFileKms(tmp_path / "kek", create=True)


def test_new_record_and_unwrap(kms: LocalFileKms, suite: PayloadSuite) -> None:
    record, dek = new_data_key_record(kms, "330106001000", suite, DAY, now_ms=NOW)
    assert len(dek) == suite.key_len
    assert len(record.key_id) == 16
    assert record.kek_id == kms.kek_id
    assert (record.created_at_ms, record.not_after_ms) == (NOW, NOW + DAY)
    assert record.kafka_key() == f"330106001000/{record.key_id.hex()}".encode()
    assert unwrap_data_key(kms, record) == dek
    assert record.is_valid_at(NOW) and not record.is_valid_at(NOW + DAY)
    # SM4-GCM keys are wrapped the 国密 way (SM4 under an SM3-derived key), AES keys with AES.
    assert record.wrapped[0] == (2 if suite is PayloadSuite.SM4_GCM else 1)


def test_default_clock(kms: LocalFileKms) -> None:
    record, _ = new_data_key_record(kms, "r", PayloadSuite.AES_256_GCM, DAY)
    assert record.created_at_ms > NOW


def test_json_round_trip(kms: LocalFileKms, suite: PayloadSuite) -> None:
    record, dek = new_data_key_record(kms, "街道-330106001", suite, DAY, now_ms=NOW)
    data = record.to_json()
    parsed = json.loads(data)
    assert parsed["suite"] == suite.name
    assert parsed["v"] == 1
    again = DataKeyRecord.from_json(data)
    assert again == record
    assert unwrap_data_key(kms, again) == dek


@pytest.mark.parametrize(
    "changes",
    [
        {"recipient": "330106001001"},
        {"key_id": bytes(16)},
        {"suite": PayloadSuite.SM4_GCM},
        {"not_after_ms": NOW + 2 * DAY},
        {"created_at_ms": NOW - 1},
    ],
)
def test_record_fields_are_bound_to_the_wrapped_key(
    kms: LocalFileKms, changes: dict[str, object]
) -> None:
    record, _ = new_data_key_record(kms, "330106001000", PayloadSuite.AES_256_GCM, DAY, NOW)
    with pytest.raises(KeyUnwrapError):
        unwrap_data_key(kms, dataclasses.replace(record, **changes))  # type: ignore[arg-type]


def test_other_kek(tmp_path: Path, kms: LocalFileKms) -> None:
    record, _ = new_data_key_record(kms, "r", PayloadSuite.AES_256_GCM, DAY, NOW)
    other = LocalFileKms(tmp_path / "other", create=True)
    with pytest.raises(KeyUnwrapError, match="wrapped under KEK"):
        unwrap_data_key(other, record)


def test_invalid_arguments(kms: LocalFileKms) -> None:
    with pytest.raises(ValueError):
        new_data_key_record(kms, "r", PayloadSuite.AES_256_GCM, 0, NOW)
    with pytest.raises(ValueError):
        new_data_key_record(kms, "", PayloadSuite.AES_256_GCM, DAY, NOW)


def _valid_json() -> dict[str, object]:
    record = DataKeyRecord("r", bytes(16), PayloadSuite.AES_256_GCM, b"w", "abcd", 1, 2)
    value: dict[str, object] = json.loads(record.to_json())
    return value


@pytest.mark.parametrize(
    "changes",
    [
        {"v": 2},
        {"extra": 1},
        {"suite": "CHACHA"},
        {"suite": 1},
        {"key_id": "AAAA"},
        {"key_id": "not base64!"},
        {"created_at_ms": "1"},
        {"created_at_ms": True},
        {"created_at_ms": 3},
        {"recipient": ""},
        {"recipient": None},
    ],
)
def test_from_json_rejects_bad_records(changes: dict[str, object]) -> None:
    obj = _valid_json() | changes
    with pytest.raises(KeyRecordError):
        DataKeyRecord.from_json(json.dumps(obj).encode())


@pytest.mark.parametrize("data", [b"", b"[]", b"null", b"\xff", b"{"])
def test_from_json_rejects_garbage(data: bytes) -> None:
    with pytest.raises(KeyRecordError):
        DataKeyRecord.from_json(data)


def test_from_json_missing_field() -> None:
    obj = _valid_json()
    del obj["kek_id"]
    with pytest.raises(KeyRecordError):
        DataKeyRecord.from_json(json.dumps(obj).encode())


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_from_json_raises_only_crypto_errors(data: bytes) -> None:
    with contextlib.suppress(CryptoError):
        DataKeyRecord.from_json(data)


def test_key_id_is_random(kms: LocalFileKms) -> None:
    ids = {new_data_key_record(kms, "r", PayloadSuite.AES_256_GCM, DAY)[0].key_id for _ in range(5)}
    assert len(ids) == 5
    assert os.urandom(16) not in ids
