"""The KEK behind a small KMS interface.

Data keys are stored in ``_govhub.keys`` wrapped under the hub's key-encryption key (KEK).
`LocalFileKms` keeps the KEK in a local file; Vault Transit or a cloud KMS can implement
the same `Kms` protocol.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.crypto.errors import KeyFileError, KeyUnwrapError
from hub.crypto.suites import Sm4Gcm
from hub.metrics import RETIRED_KEK_UNWRAPS

if TYPE_CHECKING:
    from hub.config import CryptoConfig

__all__ = ["KEK_LEN", "WRAP_VERSION", "WRAP_VERSION_SM", "Kms", "LocalFileKms"]

KEK_LEN = 32
WRAP_VERSION = 1
WRAP_VERSION_SM = 2
"""国密 wrap: SM4-GCM under a key derived from the KEK with HKDF-SM3."""
_SM_INFO = b"govhub KEK SM4-GCM wrap v2"
_KEK_ID_LEN = 8
_NONCE_LEN = 12
# version, KEK id (raw 8 bytes), nonce
_WRAP_HEADER = struct.Struct(">B8s12s")


class Kms(Protocol):
    """Wraps and unwraps data keys under a KEK.

    `context` is bound to the wrapped key: unwrapping with any other context fails with
    KeyUnwrapError. ``national`` asks for the 国密 algorithms (SM4, SM3) for this key, as
    used for SM4-GCM data keys. New keys are wrapped under the current KEK (`kek_id`);
    keys wrapped under a retired KEK the KMS still holds keep unwrapping (`holds`).
    """

    @property
    def kek_id(self) -> str: ...

    def holds(self, kek_id: str) -> bool: ...

    def wrap(self, dek: bytes, context: bytes, national: bool = False) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class _Kek:
    """One KEK's identity and ciphers."""

    __slots__ = ("aead", "id", "path", "raw_id", "sm_aead")

    def __init__(self, kek: bytes, path: Path) -> None:
        self.path = path
        self.raw_id = hashlib.sha256(kek).digest()[:_KEK_ID_LEN]
        self.id = self.raw_id.hex()
        self.aead = AESGCM(kek)
        self.sm_aead = Sm4Gcm(HKDF(hashes.SM3(), 16, salt=None, info=_SM_INFO).derive(kek))


class LocalFileKms:
    """KEK of 32 random bytes in a file only its owner can read (mode 0600).

    Wrapped keys are ``version | KEK id (8) | nonce (12) | AEAD(dek) || tag`` with
    ``version | KEK id | context`` as associated data: version 1 is AES-256-GCM under the
    KEK, version 2 (国密) SM4-GCM under HKDF-SM3(KEK).

    ``retired``: files of earlier KEKs, kept only to unwrap what was wrapped under them
    before a rotation (never to wrap); `govhub keys rewrap` moves those keys to the current
    KEK, after which the retired files can be destroyed.
    """

    def __init__(self, path: Path, create: bool = False, retired: Iterable[Path] = ()) -> None:
        self.path = Path(path)
        self._current = _Kek(_read_or_create_kek(self.path, create), self.path)
        self._keks = {self._current.raw_id: self._current}
        for old in retired:
            kek = _Kek(_read_or_create_kek(Path(old), create=False), Path(old))
            self._keks.setdefault(kek.raw_id, kek)

    @classmethod
    def from_config(cls, crypto: CryptoConfig, create: bool = True) -> LocalFileKms:
        """The KMS of a hub's ``[crypto]`` section: its KEK file (created on first start
        when ``create``) and its retired KEK files."""
        return cls(crypto.kek_file, create=create, retired=crypto.retired_kek_files)

    @property
    def kek_id(self) -> str:
        return self._current.id

    @property
    def retired_kek_ids(self) -> list[str]:
        return [k.id for k in self._keks.values() if k is not self._current]

    def holds(self, kek_id: str) -> bool:
        return any(k.id == kek_id for k in self._keks.values())

    def __repr__(self) -> str:
        retired = f", retired={self.retired_kek_ids!r}" if len(self._keks) > 1 else ""
        return f"LocalFileKms(path={str(self.path)!r}, kek_id={self.kek_id!r}{retired})"

    def wrap(self, dek: bytes, context: bytes, national: bool = False) -> bytes:
        return self._wrap(dek, context, os.urandom(_NONCE_LEN), national)

    def _wrap(self, dek: bytes, context: bytes, nonce: bytes, national: bool = False) -> bytes:
        version = WRAP_VERSION_SM if national else WRAP_VERSION
        header = _WRAP_HEADER.pack(version, self._current.raw_id, nonce)
        aad = header[: 1 + _KEK_ID_LEN] + context
        aead = self._current.sm_aead if national else self._current.aead
        return header + aead.encrypt(nonce, dek, aad)

    def wrapped_under(self, wrapped: bytes) -> str:
        """The id of the KEK a wrapped key names (whether or not this KMS holds it)."""
        if len(wrapped) < _WRAP_HEADER.size + 16:
            raise KeyUnwrapError(f"wrapped key of {len(wrapped)} bytes is truncated")
        return str(wrapped[1 : 1 + _KEK_ID_LEN].hex())

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        if len(wrapped) < _WRAP_HEADER.size + 16:
            raise KeyUnwrapError(f"wrapped key of {len(wrapped)} bytes is truncated")
        version, kek_id, nonce = _WRAP_HEADER.unpack_from(wrapped, 0)
        if version not in (WRAP_VERSION, WRAP_VERSION_SM):
            raise KeyUnwrapError(f"unsupported wrapped-key version {version}")
        kek = self._keks.get(kek_id)
        if kek is None:
            held = ", ".join(k.id for k in self._keks.values())
            raise KeyUnwrapError(
                f"key is wrapped under KEK {kek_id.hex()}, this KMS holds KEK {held}"
            )
        aad = wrapped[: 1 + _KEK_ID_LEN] + context
        aead = kek.sm_aead if version == WRAP_VERSION_SM else kek.aead
        try:
            dek = aead.decrypt(nonce, wrapped[_WRAP_HEADER.size :], aad)
        except InvalidTag:
            raise KeyUnwrapError(
                f"unwrap under KEK {kek.id} failed: wrong context or tampered key"
            ) from None
        if kek is not self._current:
            RETIRED_KEK_UNWRAPS.labels(kek.id).inc()
        return dek


def _read_or_create_kek(path: Path, create: bool) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if not create:
            raise KeyFileError(
                f"KEK file {path} does not exist; create it with create=True "
                "(a new KEK cannot unwrap keys wrapped under an old one)"
            ) from None
        return _create_kek(path)
    except OSError as exc:
        raise KeyFileError(f"cannot open KEK file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"KEK file {path} is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise KeyFileError(
                f"KEK file {path} has mode {stat.S_IMODE(info.st_mode):04o}; it must not be "
                f"accessible to group or others. Fix with: chmod 600 {path}"
            )
        kek = os.read(fd, KEK_LEN + 1)
    finally:
        os.close(fd)
    if len(kek) != KEK_LEN:
        raise KeyFileError(f"KEK file {path} must hold exactly {KEK_LEN} bytes")
    return kek


def _create_kek(path: Path) -> bytes:
    """Write a new KEK atomically: a private temp file, then link() so no reader ever sees a
    partial file and a concurrent creator cannot be overwritten."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kek = os.urandom(KEK_LEN)
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(kek)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            # Another process created it first: use theirs.
            return _read_or_create_kek(path, create=False)
    finally:
        tmp.unlink(missing_ok=True)
    return kek
