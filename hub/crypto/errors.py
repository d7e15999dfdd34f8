"""Typed errors of the crypto package.

Everything that parses bytes from the wire or a topic raises a subclass of `CryptoError`
and nothing else, so readers can skip or dead-letter bad input with one ``except``.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by `hub.crypto`."""


class FrameFormatError(CryptoError):
    """A delivery frame or entries block is truncated, garbled or of an unknown
    magic, version or suite."""


class FrameAuthError(CryptoError):
    """The AEAD tag did not verify: the frame was tampered with or the key is wrong."""


class WrongRecipientError(CryptoError):
    """The frame is addressed to another recipient."""


class UnknownKeyError(CryptoError):
    """The key id named by a frame or record is not available to the reader."""


class FrameReplayError(CryptoError):
    """A frame repeats or goes back behind offsets the reader has already processed."""


class KeyUnwrapError(CryptoError):
    """Unwrapping a data key under the KEK failed: wrong KEK, wrong context or tampered."""


class KeyFileError(CryptoError):
    """The local KEK file is missing, malformed or readable by others."""


class KeyRecordError(CryptoError):
    """A data-key record from ``_govhub.keys`` is malformed."""


class KeyReleaseError(CryptoError):
    """HPKE key release failed, or public/private key material is invalid."""
