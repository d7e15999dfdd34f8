from __future__ import annotations

import os

import pytest

from hub.crypto import (
    KemSuite,
    KeyReleaseError,
    generate_recipient_key,
    load_private_key,
    load_public_key,
    open_key_for_recipient,
    public_key_of,
    seal_key_for_recipient,
)
from hub.crypto.keyrelease import RELEASE_MAGIC

RECIPIENT = "330106001000"
KEY_ID = bytes(range(16))


@pytest.fixture(params=list(KemSuite), ids=lambda k: k.value)
def kem(request: pytest.FixtureRequest) -> KemSuite:
    value: KemSuite = request.param
    return value


@pytest.fixture
def pair(kem: KemSuite) -> tuple[bytes, bytes]:
    return generate_recipient_key(kem)


def test_key_sizes() -> None:
    private, public = generate_recipient_key()
    assert (len(private), len(public)) == (32, 32)
    private, public = generate_recipient_key(KemSuite.MLKEM768_X25519)
    assert (len(private), len(public)) == (96, 1216)


def test_round_trip(kem: KemSuite, pair: tuple[bytes, bytes]) -> None:
    private, public = pair
    dek = os.urandom(32)
    sealed = seal_key_for_recipient(dek, public, kem, RECIPIENT, KEY_ID)
    assert sealed.startswith(RELEASE_MAGIC + b"\x01")
    assert open_key_for_recipient(sealed, private, kem, RECIPIENT, KEY_ID) == dek
    assert seal_key_for_recipient(dek, public, kem, RECIPIENT, KEY_ID) != sealed


def test_kem_given_as_string(pair: tuple[bytes, bytes], kem: KemSuite) -> None:
    private, public = pair
    sealed = seal_key_for_recipient(b"k" * 16, public, kem.value, RECIPIENT, KEY_ID)  # type: ignore[arg-type]
    assert open_key_for_recipient(sealed, private, kem, RECIPIENT, KEY_ID) == b"k" * 16


def test_public_key_of(kem: KemSuite, pair: tuple[bytes, bytes]) -> None:
    private, public = pair
    assert public_key_of(private, kem) == public


def test_wrong_private_key(kem: KemSuite, pair: tuple[bytes, bytes]) -> None:
    sealed = seal_key_for_recipient(os.urandom(32), pair[1], kem, RECIPIENT, KEY_ID)
    other_private, _ = generate_recipient_key(kem)
    with pytest.raises(KeyReleaseError):
        open_key_for_recipient(sealed, other_private, kem, RECIPIENT, KEY_ID)


def test_wrong_recipient(kem: KemSuite, pair: tuple[bytes, bytes]) -> None:
    sealed = seal_key_for_recipient(os.urandom(32), pair[1], kem, RECIPIENT, KEY_ID)
    with pytest.raises(KeyReleaseError):
        open_key_for_recipient(sealed, pair[0], kem, "330106001001", KEY_ID)


def test_wrong_key_id(kem: KemSuite, pair: tuple[bytes, bytes]) -> None:
    sealed = seal_key_for_recipient(os.urandom(32), pair[1], kem, RECIPIENT, KEY_ID)
    with pytest.raises(KeyReleaseError):
        open_key_for_recipient(sealed, pair[0], kem, RECIPIENT, bytes(16))
    with pytest.raises(KeyReleaseError):
        open_key_for_recipient(sealed, pair[0], kem, RECIPIENT, b"short")


def test_tampered_or_truncated(kem: KemSuite, pair: tuple[bytes, bytes]) -> None:
    sealed = seal_key_for_recipient(os.urandom(32), pair[1], kem, RECIPIENT, KEY_ID)
    positions = [0, 4, 5, 6, len(sealed) // 2, len(sealed) - 1]
    for position in positions:
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(KeyReleaseError):
            open_key_for_recipient(bytes(tampered), pair[0], kem, RECIPIENT, KEY_ID)
    for length in (0, 5, 6, 7, 40, len(sealed) - 1):
        with pytest.raises(KeyReleaseError):
            open_key_for_recipient(sealed[:length], pair[0], kem, RECIPIENT, KEY_ID)


def test_kem_mismatch() -> None:
    _x_private, x_public = generate_recipient_key(KemSuite.X25519)
    sealed = seal_key_for_recipient(os.urandom(32), x_public, KemSuite.X25519, RECIPIENT, KEY_ID)
    h_private, _ = generate_recipient_key(KemSuite.MLKEM768_X25519)
    with pytest.raises(KeyReleaseError, match="KEM"):
        open_key_for_recipient(sealed, h_private, KemSuite.MLKEM768_X25519, RECIPIENT, KEY_ID)
    with pytest.raises(KeyReleaseError):
        seal_key_for_recipient(b"k" * 32, x_public, KemSuite.MLKEM768_X25519, RECIPIENT, KEY_ID)


@pytest.mark.parametrize(
    "kem, material",
    [
        (KemSuite.X25519, b""),
        (KemSuite.X25519, bytes(31)),
        (KemSuite.X25519, bytes(32)),  # low-order point
        (KemSuite.MLKEM768_X25519, bytes(1216)),
        (KemSuite.MLKEM768_X25519, b"\xff" * 1216),
        (KemSuite.MLKEM768_X25519, bytes(100)),
    ],
)
def test_bad_public_key_material(kem: KemSuite, material: bytes) -> None:
    with pytest.raises(KeyReleaseError):
        load_public_key(material, kem)
    with pytest.raises(KeyReleaseError):
        seal_key_for_recipient(b"k" * 32, material, kem, RECIPIENT, KEY_ID)


@pytest.mark.parametrize("material", [b"", bytes(31), bytes(95), bytes(97)])
def test_bad_private_key_material(kem: KemSuite, material: bytes) -> None:
    with pytest.raises(KeyReleaseError):
        load_private_key(material, kem)


def test_unknown_kem() -> None:
    with pytest.raises(KeyReleaseError, match="unknown KEM"):
        load_public_key(bytes(32), "p256")
    with pytest.raises(KeyReleaseError):
        generate_recipient_key("kyber")  # type: ignore[arg-type]


def test_seal_validates_binding() -> None:
    _, public = generate_recipient_key()
    with pytest.raises(ValueError):
        seal_key_for_recipient(b"k" * 32, public, KemSuite.X25519, "", KEY_ID)
    with pytest.raises(ValueError):
        seal_key_for_recipient(b"k" * 32, public, KemSuite.X25519, RECIPIENT, b"short")
