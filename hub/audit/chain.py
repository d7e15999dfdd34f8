"""The per-partition hash chain over audit events and its signed checkpoints (pure logic).

For audit partition ``p`` the notary appends, in offset order, one *link* per event::

    hash_n = H("govhub-audit-link-v1|p|seq|offset|event_id|event_digest|prev_hash")

where ``seq`` counts the partition's chained events from 0, ``event_digest = H(value)`` and
``prev_hash`` is the previous link's hash (:data:`GENESIS` for the first). Every
``checkpoint_every`` links or seconds it appends a *checkpoint*: ``(p, seq, offset, hash,
at_ms, alg)`` signed with the hub's Ed25519 key. Altering any event changes its digest;
recomputing the chain after it breaks the next signed checkpoint.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.audit.digest import hasher

GENESIS = "0" * 64
CHAIN_VERSION = 1


class ChainFormatError(ValueError):
    """A chain record that is not a well-formed link or checkpoint."""


@dataclass(frozen=True, slots=True)
class Link:
    partition: int
    seq: int
    offset: int
    event_id: str
    event_digest: str
    prev_hash: str
    hash: str
    alg: str = "sha256"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": CHAIN_VERSION,
            "kind": "link",
            "alg": self.alg,
            "partition": self.partition,
            "seq": self.seq,
            "offset": self.offset,
            "event_id": self.event_id,
            "event_digest": self.event_digest,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def recomputed_hash(self) -> str:
        return link_hash(
            self.alg,
            self.partition,
            self.seq,
            self.offset,
            self.event_id,
            self.event_digest,
            self.prev_hash,
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    partition: int
    seq: int
    offset: int
    hash: str
    at_ms: int
    key_id: str
    signature: str
    alg: str = "sha256"

    def message(self) -> bytes:
        return checkpoint_message(
            self.alg, self.partition, self.seq, self.offset, self.hash, self.at_ms
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "v": CHAIN_VERSION,
            "kind": "checkpoint",
            "alg": self.alg,
            "partition": self.partition,
            "seq": self.seq,
            "offset": self.offset,
            "hash": self.hash,
            "at_ms": self.at_ms,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    def verify(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


def link_hash(
    alg: str, partition: int, seq: int, offset: int, event_id: str, digest: str, prev: str
) -> str:
    text = f"govhub-audit-link-v1|{partition}|{seq}|{offset}|{event_id}|{digest}|{prev}"
    return hasher(alg)(text.encode())


def checkpoint_message(
    alg: str, partition: int, seq: int, offset: int, hash_: str, at_ms: int
) -> bytes:
    return f"govhub-audit-checkpoint-v1|{alg}|{partition}|{seq}|{offset}|{hash_}|{at_ms}".encode()


def sign_checkpoint(key: Ed25519PrivateKey, key_id: str, head: Link, at_ms: int) -> Checkpoint:
    message = checkpoint_message(head.alg, head.partition, head.seq, head.offset, head.hash, at_ms)
    signature = base64.b64encode(key.sign(message)).decode()
    return Checkpoint(
        head.partition, head.seq, head.offset, head.hash, at_ms, key_id, signature, head.alg
    )


def parse_chain_record(doc: Any) -> Link | Checkpoint:
    """A link or checkpoint from its JSON document; ChainFormatError otherwise."""
    if not isinstance(doc, dict):
        raise ChainFormatError("chain record is not a JSON object")
    try:
        kind = doc["kind"]
        alg = str(doc.get("alg", "sha256"))
        if kind == "link":
            return Link(
                _int(doc["partition"]),
                _int(doc["seq"]),
                _int(doc["offset"]),
                str(doc["event_id"]),
                str(doc["event_digest"]),
                str(doc["prev_hash"]),
                str(doc["hash"]),
                alg,
            )
        if kind == "checkpoint":
            return Checkpoint(
                _int(doc["partition"]),
                _int(doc["seq"]),
                _int(doc["offset"]),
                str(doc["hash"]),
                _int(doc["at_ms"]),
                str(doc["key_id"]),
                str(doc["signature"]),
                alg,
            )
    except KeyError as exc:
        raise ChainFormatError(f"chain record lacks field {exc.args[0]!r}") from None
    raise ChainFormatError(f"unknown chain record kind {doc.get('kind')!r}")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChainFormatError(f"expected an integer, got {value!r}")
    return value


class ChainHead:
    """The growing end of one partition's chain (what the notary keeps in memory)."""

    __slots__ = ("_hash", "alg", "last", "partition", "since_checkpoint")

    def __init__(self, partition: int, alg: str, last: Link | None = None) -> None:
        self.partition = partition
        self.alg = alg
        self.last = last
        self.since_checkpoint = 0
        self._hash = hasher(alg)

    @property
    def next_seq(self) -> int:
        return 0 if self.last is None else self.last.seq + 1

    def append(self, offset: int, event_id: str, value: bytes) -> Link:
        prev = GENESIS if self.last is None else self.last.hash
        seq = self.next_seq
        digest = self._hash(value)
        link = Link(
            self.partition,
            seq,
            offset,
            event_id,
            digest,
            prev,
            link_hash(self.alg, self.partition, seq, offset, event_id, digest, prev),
            self.alg,
        )
        self.last = link
        self.since_checkpoint += 1
        return link
