"""Payload AEAD suites for delivery frames.

AES-256-GCM is the default; SM4-GCM (RFC 8998) is the 国密 (Chinese commercial cryptography)
suite. Both come from `cryptography`; this module only gives them one shape.
"""

from __future__ import annotations

import enum
import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.crypto.errors import FrameAuthError

NONCE_LEN = 12
TAG_LEN = 16


class PayloadSuite(enum.IntEnum):
    """Suite id as carried in the frame header (one byte)."""

    AES_256_GCM = 1
    SM4_GCM = 2

    @property
    def key_len(self) -> int:
        return _KEY_LEN[self]


_KEY_LEN = {PayloadSuite.AES_256_GCM: 32, PayloadSuite.SM4_GCM: 16}


class PayloadAead(Protocol):
    """The `AESGCM` call shape: ``encrypt(nonce, data, aad)`` returns ciphertext||tag."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class Sm4Gcm:
    """SM4-GCM with a 128-bit tag, in the same shape as `AESGCM`."""

    __slots__ = ("_algorithm",)

    def __init__(self, key: bytes) -> None:
        self._algorithm = algorithms.SM4(key)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        _check_nonce(nonce)
        encryptor = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        if associated_data:
            encryptor.authenticate_additional_data(associated_data)
        return encryptor.update(data) + encryptor.finalize() + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        _check_nonce(nonce)
        if len(data) < TAG_LEN:
            raise InvalidTag
        body, tag = data[:-TAG_LEN], data[-TAG_LEN:]
        decryptor = Cipher(self._algorithm, modes.GCM(nonce, tag)).decryptor()
        if associated_data:
            decryptor.authenticate_additional_data(associated_data)
        return decryptor.update(body) + decryptor.finalize()


def _check_nonce(nonce: bytes) -> None:
    # GCM accepts other lengths; the frame format fixes 96 bits, so refuse anything else.
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"nonce must be {NONCE_LEN} bytes, got {len(nonce)}")


def payload_aead(suite: PayloadSuite, key: bytes) -> PayloadAead:
    """An AEAD object for `suite` and `key`; build it once per key and reuse it."""
    suite = PayloadSuite(suite)
    if len(key) != suite.key_len:
        raise ValueError(f"{suite.name} needs a {suite.key_len}-byte key, got {len(key)} bytes")
    if suite is PayloadSuite.AES_256_GCM:
        return AESGCM(key)
    return Sm4Gcm(key)


def new_data_key(suite: PayloadSuite) -> bytes:
    """A fresh random data key of the length `suite` needs."""
    return os.urandom(PayloadSuite(suite).key_len)


def seal(suite: PayloadSuite, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate; returns ciphertext||tag. Raises ValueError on bad key/nonce."""
    aead = payload_aead(suite, key)
    _check_nonce(nonce)
    return aead.encrypt(nonce, plaintext, aad)


def open_(suite: PayloadSuite, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Verify and decrypt ciphertext||tag.

    Raises FrameAuthError when the tag does not verify, and also when `key` or `nonce` has
    the wrong length for `suite`: either way this key cannot open this ciphertext.
    """
    try:
        aead = payload_aead(suite, key)
        _check_nonce(nonce)
        return aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise FrameAuthError(f"{PayloadSuite(suite).name} tag check failed") from None
    except ValueError as exc:
        raise FrameAuthError(str(exc)) from None
