"""Key release: a data key sealed to a recipient's public key with HPKE (RFC 9180).

The ``api`` releases a DEK only while the recipient's subscription is valid, sealed with
HPKE base mode (KEM, HKDF-SHA256, AES-256-GCM). X25519 is the default KEM;
ML-KEM-768+X25519 is the post-quantum hybrid. The ``info`` string binds the release to the
recipient and key id, so a sealed key cannot be passed off as another recipient's or
another epoch's.

Raw key encodings (stored and sent as base64):

* X25519: private 32 bytes, public 32 bytes (RFC 7748).
* ML-KEM-768+X25519: private = ML-KEM-768 seed (64) || X25519 private (32), 96 bytes;
  public = ML-KEM-768 encapsulation key (1184) || X25519 public (32), 1216 bytes.
"""

from __future__ import annotations

import struct
from enum import StrEnum
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from hub.crypto.errors import KeyReleaseError
from hub.crypto.frames import KEY_ID_LEN

__all__ = [
    "RELEASE_MAGIC",
    "RELEASE_VERSION",
    "KemSuite",
    "PrivateKey",
    "PublicKey",
    "generate_recipient_key",
    "load_private_key",
    "load_public_key",
    "open_key_for_recipient",
    "public_key_of",
    "release_info",
    "seal_key_for_recipient",
]

RELEASE_MAGIC = b"GHKR"
RELEASE_VERSION = 1
_INFO_LABEL = b"govhub key release v1\x00"
_U16 = struct.Struct(">H")
_ENVELOPE = struct.Struct(">4sBB")

_X25519_LEN = 32
_MLKEM_SEED_LEN = 64
_MLKEM_PUBLIC_LEN = 1184


class KemSuite(StrEnum):
    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"

    @property
    def wire_id(self) -> int:
        """The KEM byte of the release envelope."""
        return _WIRE_ID[self]


_WIRE_ID = {KemSuite.X25519: 1, KemSuite.MLKEM768_X25519: 2}
_HPKE = {
    KemSuite.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    KemSuite.MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}

PublicKey: TypeAlias = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
PrivateKey: TypeAlias = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


def _kem(kem: KemSuite | str) -> KemSuite:
    try:
        return KemSuite(kem)
    except ValueError:
        raise KeyReleaseError(f"unknown KEM suite {kem!r}") from None


def generate_recipient_key(kem: KemSuite = KemSuite.X25519) -> tuple[bytes, bytes]:
    """A new recipient key pair as raw (private, public) bytes."""
    kem = _kem(kem)
    x_private = x25519.X25519PrivateKey.generate()
    x_public = x_private.public_key().public_bytes_raw()
    if kem is KemSuite.X25519:
        return x_private.private_bytes_raw(), x_public
    m_private = mlkem.MLKEM768PrivateKey.generate()
    return (
        m_private.private_bytes_raw() + x_private.private_bytes_raw(),
        m_private.public_key().public_bytes_raw() + x_public,
    )


def _x25519_public(raw: bytes) -> x25519.X25519PublicKey:
    key = x25519.X25519PublicKey.from_public_bytes(raw)
    # A low-order point gives an all-zero shared secret; refuse it at load time rather
    # than at the first release.
    x25519.X25519PrivateKey.generate().exchange(key)
    return key


def load_public_key(public_key: bytes, kem: KemSuite | str) -> PublicKey:
    """Parse raw public key bytes; raises KeyReleaseError for bad material."""
    kem = _kem(kem)
    try:
        if kem is KemSuite.X25519:
            if len(public_key) != _X25519_LEN:
                raise ValueError(f"need {_X25519_LEN} bytes")
            return _x25519_public(public_key)
        if len(public_key) != _MLKEM_PUBLIC_LEN + _X25519_LEN:
            raise ValueError(f"need {_MLKEM_PUBLIC_LEN + _X25519_LEN} bytes")
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(public_key[:_MLKEM_PUBLIC_LEN]),
            _x25519_public(public_key[_MLKEM_PUBLIC_LEN:]),
        )
    except (ValueError, TypeError) as exc:
        raise KeyReleaseError(f"invalid {kem.value} public key: {exc}") from None


def load_private_key(private_key: bytes, kem: KemSuite | str) -> PrivateKey:
    """Parse raw private key bytes; raises KeyReleaseError for bad material."""
    kem = _kem(kem)
    try:
        if kem is KemSuite.X25519:
            if len(private_key) != _X25519_LEN:
                raise ValueError(f"need {_X25519_LEN} bytes")
            return x25519.X25519PrivateKey.from_private_bytes(private_key)
        if len(private_key) != _MLKEM_SEED_LEN + _X25519_LEN:
            raise ValueError(f"need {_MLKEM_SEED_LEN + _X25519_LEN} bytes")
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(private_key[:_MLKEM_SEED_LEN]),
            x25519.X25519PrivateKey.from_private_bytes(private_key[_MLKEM_SEED_LEN:]),
        )
    except (ValueError, TypeError) as exc:
        raise KeyReleaseError(f"invalid {kem.value} private key: {exc}") from None


def public_key_of(private_key: bytes, kem: KemSuite | str) -> bytes:
    """The raw public key that belongs to raw `private_key`."""
    kem = _kem(kem)
    load_private_key(private_key, kem)
    if kem is KemSuite.X25519:
        x_private = x25519.X25519PrivateKey.from_private_bytes(private_key)
        return x_private.public_key().public_bytes_raw()
    m_private = mlkem.MLKEM768PrivateKey.from_seed_bytes(private_key[:_MLKEM_SEED_LEN])
    x_private = x25519.X25519PrivateKey.from_private_bytes(private_key[_MLKEM_SEED_LEN:])
    return m_private.public_key().public_bytes_raw() + x_private.public_key().public_bytes_raw()


def release_info(recipient: str, key_id: bytes) -> bytes:
    """HPKE ``info``: label, recipient and key id."""
    raw = recipient.encode("utf-8")
    if not 0 < len(raw) <= 0xFFFF:
        raise ValueError("recipient must be 1..65535 bytes of UTF-8")
    if len(key_id) != KEY_ID_LEN:
        raise ValueError(f"key_id must be {KEY_ID_LEN} bytes, got {len(key_id)}")
    return b"".join((_INFO_LABEL, _U16.pack(len(raw)), raw, key_id))


def seal_key_for_recipient(
    dek: bytes, public_key: bytes, kem: KemSuite, recipient: str, key_id: bytes
) -> bytes:
    """Seal `dek` to `public_key`. Returns ``"GHKR" | version | KEM id | enc || ct``.

    Raises KeyReleaseError for bad public key material, ValueError for a bad recipient or
    key id.
    """
    kem = _kem(kem)
    info = release_info(recipient, key_id)
    public = load_public_key(public_key, kem)
    try:
        sealed = _HPKE[kem].encrypt(dek, public, info=info)
    except ValueError as exc:
        raise KeyReleaseError(f"HPKE seal failed: {exc}") from None
    return _ENVELOPE.pack(RELEASE_MAGIC, RELEASE_VERSION, kem.wire_id) + sealed


def open_key_for_recipient(
    sealed: bytes, private_key: bytes, kem: KemSuite, recipient: str, key_id: bytes
) -> bytes:
    """Open a released key; raises KeyReleaseError if it was not sealed to this private key,
    recipient and key id, or is malformed."""
    kem = _kem(kem)
    try:
        info = release_info(recipient, key_id)
    except ValueError as exc:
        raise KeyReleaseError(str(exc)) from None
    private = load_private_key(private_key, kem)
    if len(sealed) < _ENVELOPE.size:
        raise KeyReleaseError("released key is truncated")
    magic, version, kem_id = _ENVELOPE.unpack_from(sealed, 0)
    if magic != RELEASE_MAGIC or version != RELEASE_VERSION:
        raise KeyReleaseError("not a version 1 GovHub key-release envelope")
    if kem_id != kem.wire_id:
        raise KeyReleaseError(f"released key uses KEM id {kem_id}, expected {kem.value}")
    try:
        return _HPKE[kem].decrypt(sealed[_ENVELOPE.size :], private, info=info)
    except (InvalidTag, ValueError) as exc:
        raise KeyReleaseError(
            "HPKE open failed: wrong private key, recipient or key id, or tampered"
        ) from exc
