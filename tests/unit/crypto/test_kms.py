from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from hub.crypto import KeyFileError, KeyUnwrapError, LocalFileKms
from hub.crypto.kms import KEK_LEN, Kms


@pytest.fixture
def kms(tmp_path: Path) -> LocalFileKms:
    return LocalFileKms(tmp_path / "kek", create=True)


def test_satisfies_protocol(kms: LocalFileKms) -> None:
    protocol: Kms = kms
    assert protocol.kek_id == kms.kek_id


def test_creates_private_key_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "kek"
    old_umask = os.umask(0)
    try:
        kms = LocalFileKms(path, create=True)
    finally:
        os.umask(old_umask)
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_size == KEK_LEN
    assert kms.kek_id == hashlib.sha256(path.read_bytes()).digest()[:8].hex()
    assert [p.name for p in path.parent.iterdir()] == ["kek"]


def test_reopens_existing_key(tmp_path: Path, kms: LocalFileKms) -> None:
    wrapped = kms.wrap(b"k" * 32, b"ctx")
    again = LocalFileKms(tmp_path / "kek", create=True)
    assert again.kek_id == kms.kek_id
    assert again.unwrap(wrapped, b"ctx") == b"k" * 32


def test_missing_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        LocalFileKms(tmp_path / "absent")


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660])
def test_refuses_file_readable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek"
    path.write_bytes(os.urandom(KEK_LEN))
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        LocalFileKms(path)
    with pytest.raises(KeyFileError):
        LocalFileKms(path, create=True)


@pytest.mark.parametrize("size", [0, 16, 33])
def test_refuses_wrong_size(tmp_path: Path, size: int) -> None:
    path = tmp_path / "kek"
    path.write_bytes(os.urandom(size))
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="32 bytes"):
        LocalFileKms(path)


def test_refuses_directory(tmp_path: Path) -> None:
    (tmp_path / "kek").mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        LocalFileKms(tmp_path / "kek")


def test_wrap_round_trip_and_format(kms: LocalFileKms) -> None:
    dek = os.urandom(32)
    wrapped = kms.wrap(dek, b"context")
    assert wrapped[0] == 1
    assert wrapped[1:9].hex() == kms.kek_id
    assert len(wrapped) == 1 + 8 + 12 + 32 + 16
    assert kms.unwrap(wrapped, b"context") == dek
    assert kms.wrap(dek, b"context") != wrapped


def test_wrong_context(kms: LocalFileKms) -> None:
    wrapped = kms.wrap(os.urandom(32), b"recipient-a")
    with pytest.raises(KeyUnwrapError, match="context"):
        kms.unwrap(wrapped, b"recipient-b")


def test_other_kek(tmp_path: Path, kms: LocalFileKms) -> None:
    other = LocalFileKms(tmp_path / "other", create=True)
    with pytest.raises(KeyUnwrapError, match="wrapped under KEK"):
        other.unwrap(kms.wrap(os.urandom(32), b"c"), b"c")


def test_tampered_or_truncated(kms: LocalFileKms) -> None:
    wrapped = kms.wrap(os.urandom(32), b"c")
    for position in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[position] ^= 0x01
        with pytest.raises(KeyUnwrapError):
            kms.unwrap(bytes(tampered), b"c")
    for length in range(len(wrapped)):
        with pytest.raises(KeyUnwrapError):
            kms.unwrap(wrapped[:length], b"c")


def test_repr_hides_key(kms: LocalFileKms) -> None:
    text = repr(kms)
    assert kms.kek_id in text
    assert (kms.path.read_bytes().hex()) not in text


def test_national_wrap_uses_sm4_under_an_sm3_derived_key(kms: LocalFileKms) -> None:
    """国密 deployments: SM4-GCM data keys are wrapped with SM4-GCM under HKDF-SM3(KEK)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from hub.crypto.suites import Sm4Gcm

    dek = os.urandom(16)
    wrapped = kms.wrap(dek, b"context", national=True)
    assert wrapped[0] == 2 and wrapped[1:9].hex() == kms.kek_id
    assert len(wrapped) == 1 + 8 + 12 + 16 + 16
    assert kms.unwrap(wrapped, b"context") == dek
    # Independently: the SM4 key is HKDF-SM3 of the KEK file's bytes.
    kek = kms.path.read_bytes()
    key = HKDF(hashes.SM3(), 16, salt=None, info=b"govhub KEK SM4-GCM wrap v2").derive(kek)
    opened = Sm4Gcm(key).decrypt(wrapped[9:21], wrapped[21:], wrapped[:9] + b"context")
    assert opened == dek
    with pytest.raises(KeyUnwrapError, match="context"):
        kms.unwrap(wrapped, b"other")
    # The version byte is authenticated: relabelling as an AES wrap fails.
    with pytest.raises(KeyUnwrapError):
        kms.unwrap(b"\x01" + wrapped[1:], b"context")


def test_a_retired_kek_unwraps_but_never_wraps(tmp_path: Path, kms: LocalFileKms) -> None:
    from hub.metrics import RETIRED_KEK_UNWRAPS

    dek = os.urandom(32)
    old_aes = kms.wrap(dek, b"c")
    old_sm = kms.wrap(dek[:16], b"c", national=True)
    rotated = LocalFileKms(tmp_path / "kek2", create=True, retired=[kms.path])
    assert rotated.kek_id != kms.kek_id
    assert rotated.retired_kek_ids == [kms.kek_id]
    assert rotated.holds(kms.kek_id) and rotated.holds(rotated.kek_id)
    assert not rotated.holds("00" * 8)
    before = RETIRED_KEK_UNWRAPS.labels(kms.kek_id)._value.get()
    assert rotated.unwrap(old_aes, b"c") == dek
    assert rotated.unwrap(old_sm, b"c") == dek[:16]
    assert RETIRED_KEK_UNWRAPS.labels(kms.kek_id)._value.get() == before + 2
    # New wraps name the current KEK; the old KMS alone cannot open them.
    fresh = rotated.wrap(dek, b"c")
    assert fresh[1:9].hex() == rotated.kek_id
    with pytest.raises(KeyUnwrapError, match="wrapped under KEK"):
        kms.unwrap(fresh, b"c")
    # Without the retired file, keys under the old KEK are refused, naming both KEKs.
    with pytest.raises(KeyUnwrapError, match=kms.kek_id):
        LocalFileKms(tmp_path / "kek2").unwrap(old_aes, b"c")
    assert kms.kek_id in repr(rotated)


def test_a_retired_kek_file_must_exist(tmp_path: Path, kms: LocalFileKms) -> None:
    with pytest.raises(KeyFileError):
        LocalFileKms(kms.path, retired=[tmp_path / "missing"])
