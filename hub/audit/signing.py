"""The hub's Ed25519 audit signing key.

A random Ed25519 seed, wrapped under the KEK and kept in the compacted ``_govhub.keys``
topic under :data:`SIGNING_KEY` together with its public key, like the pseudonym root: every
notary instance with the KEK signs with the same key, and a KEK rotation only re-wraps it.
Inspectors verify with the public key alone (``govhub audit public-key`` prints it; pin it
out of band, since whoever can rewrite Kafka could also replace the published copy).
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.controlstate import CompactedTable
from hub.crypto.kms import Kms
from hub.crypto.secrets import AUDIT_SIGNING

SIGNING_KEY = AUDIT_SIGNING.row_key


class SigningKeyMissing(Exception):
    """No audit signing key has been created yet (no notary has run)."""


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key given as base64 or hex of its 32 raw bytes; ValueError otherwise."""
    text = text.strip()
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raw = None
    if raw is None or len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes, given as hex or base64")
    return Ed25519PublicKey.from_public_bytes(raw)


def ensure_signing_key(keys: CompactedTable, kms: Kms) -> Ed25519PrivateKey:
    """The signing key, created on first use (blocks until written and read back)."""

    def make() -> tuple[bytes, dict[str, str]]:
        seed = os.urandom(32)
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        return seed, {
            "public": base64.b64encode(public_bytes(public)).decode(),
            "key_id": key_id(public),
        }

    return Ed25519PrivateKey.from_private_bytes(AUDIT_SIGNING.ensure(keys, kms, make))


def published_public_key(keys: CompactedTable) -> Ed25519PublicKey:
    row = keys.get(SIGNING_KEY)
    if row is None:
        raise SigningKeyMissing(
            "no audit signing key in the keys topic yet: start the notary "
            "(govhub serve --roles audit)"
        )
    return parse_public_key(str(row["public"]))
