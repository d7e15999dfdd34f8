"""The hub's pseudonym secret: one random 32-byte root, wrapped under the KEK and kept in
the compacted ``_govhub.keys`` topic under :data:`ROOT_KEY`.

Recipient pseudonym keys derive from it (:class:`hub.policy.masking.PseudonymKeys`), so
every router instance computes the same pseudonyms without coordination, and a KEK
rotation only re-wraps the root (pseudonyms stay stable). The api creates the root when
the first admin is bootstrapped or a pseudonym policy is approved; routers only read it.
Party ids cannot start with ``_``, so the key never collides with a recipient's data keys.
"""

from __future__ import annotations

import base64
import os
import time

from hub.controlstate import CompactedTable
from hub.crypto.kms import Kms
from hub.policy.masking import PseudonymKeys

ROOT_KEY = "_hub/pseudonym"
_CONTEXT = b"govhub pseudonym root v1"


def load_pseudonym_keys(keys: CompactedTable, kms: Kms) -> PseudonymKeys | None:
    """The recipients' pseudonym keys, or ``None`` while no root exists."""
    row = keys.get(ROOT_KEY)
    if row is None:
        return None
    root = kms.unwrap(base64.b64decode(row["wrapped"]), _CONTEXT)
    return PseudonymKeys(root)


def ensure_pseudonym_root(keys: CompactedTable, kms: Kms) -> None:
    """Create the root if there is none (idempotent; blocks until written)."""
    if keys.get(ROOT_KEY) is not None:
        return
    wrapped = kms.wrap(os.urandom(32), _CONTEXT)
    keys.put(
        ROOT_KEY,
        {
            "wrapped": base64.b64encode(wrapped).decode(),
            "kek_id": kms.kek_id,
            "created_at_ms": int(time.time() * 1000),
        },
    )
