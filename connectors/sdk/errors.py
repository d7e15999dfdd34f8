"""Typed errors of the subscriber SDK.

Each says what went wrong and what to do; the gateway client stops on every error below
except where noted (transient network trouble is retried, not raised).
"""

from __future__ import annotations


class SubscriberError(Exception):
    """Base of every error the subscriber SDK raises."""


class SubscriptionRevoked(SubscriberError):
    """Key release or the gateway refused: the subscription is revoked, suspended or
    expired, the party is suspended, or its token expired or was rotated. ``reason`` is
    the gateway's reason word when it gave one (``revoked``, ``suspended``, ...)."""

    def __init__(self, message: str, reason: str = "revoked") -> None:
        super().__init__(message)
        self.reason = reason


class KeyFetchError(SubscriberError):
    """The hub could not be asked for a key, or answered with an error."""


class WrongKey(KeyFetchError):
    """The released data key cannot be opened with this subscriber's private key: the
    private key does not belong to the public key registered for the party."""


class FrameRejected(SubscriberError):
    """A frame failed verification (tampered, wrong key, wrong recipient)."""


class TamperedFrame(FrameRejected):
    """A frame's authentication tag does not match: it was altered after the router sealed
    it (header or ciphertext), or it is malformed. Nothing of it was written."""


class SequenceGap(SubscriberError):
    """The stream skipped part of the recipient's delivery partition: the gateway's next
    frame does not continue from the stored cursor, or the records were removed by
    retention before they were delivered. ``missing`` is the offset range, if known."""

    def __init__(self, message: str, missing: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.missing = missing


class GatewayRefused(SubscriberError):
    """The gateway refused the stream for a reason that retrying cannot fix (unknown
    token, a cursor of another partition, a malformed request). ``status`` is the HTTP
    status, ``reason`` the gateway's reason word."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class StreamReplaced(SubscriberError):
    """Another stream with the same party and client name took over; two processes are
    running for one subscriber. Give each its own ``client`` name and sink."""
