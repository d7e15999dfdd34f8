"""The hub's pseudonym secret: one random 32-byte root, wrapped under the KEK and kept in
the compacted ``_govhub.keys`` topic under :data:`ROOT_KEY`.

Recipient pseudonym keys derive from it (:class:`hub.policy.masking.PseudonymKeys`), so
every router instance computes the same pseudonyms without coordination, and a KEK
rotation only re-wraps the root (pseudonyms stay stable). The api creates the root when
the first admin is bootstrapped or a pseudonym policy is approved; routers only read it.
Party ids cannot start with ``_``, so the key never collides with a recipient's data keys.
"""

from __future__ import annotations

from hub.controlstate import CompactedTable
from hub.crypto.kms import Kms
from hub.crypto.secrets import PSEUDONYM_ROOT
from hub.policy.masking import PseudonymKeys

ROOT_KEY = PSEUDONYM_ROOT.row_key


def load_pseudonym_keys(keys: CompactedTable, kms: Kms) -> PseudonymKeys | None:
    """The recipients' pseudonym keys, or ``None`` while no root exists."""
    root = PSEUDONYM_ROOT.load(keys, kms)
    return None if root is None else PseudonymKeys(root)


def ensure_pseudonym_root(keys: CompactedTable, kms: Kms) -> None:
    """Create the root if there is none (idempotent; blocks until written)."""
    PSEUDONYM_ROOT.ensure(keys, kms)
