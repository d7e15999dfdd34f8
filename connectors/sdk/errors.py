"""Typed errors of the subscriber SDK."""

from __future__ import annotations


class SubscriberError(Exception):
    """Base of every error the subscriber SDK raises."""


class SubscriptionRevoked(SubscriberError):
    """Key release was refused: the subscription is revoked, suspended or expired."""


class KeyFetchError(SubscriberError):
    """The hub could not be asked for a key, or answered with an error."""


class FrameRejected(SubscriberError):
    """A frame failed verification (tampered, wrong key, wrong recipient)."""
