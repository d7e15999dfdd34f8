"""The first system admin, written straight into the control state.

Every api call needs a token, and tokens are issued by a system admin: the first one is
created by an operator with access to the hub's Kafka and KEK file, once. It also creates
the hub's pseudonym secret, so pseudonym masks work from the first approval on.
"""

from __future__ import annotations

from hub import kafka
from hub.config import HubConfig
from hub.crypto.kms import LocalFileKms
from hub.parties import rules
from hub.parties.model import Party, PartyKind, Role
from hub.parties.rules import PartyError
from hub.state import ControlState
from hub.subscriptions.model import now_ms
from hub.subscriptions.pseudonyms import ensure_pseudonym_root
from hub.topics import ensure_hub_topics


def bootstrap_admin(
    config: HubConfig,
    party_id: str,
    name: str,
    region_code: str,
    token_ttl_days: int,
    timeout: float = 30.0,
) -> tuple[Party, str]:
    """Create the first system admin and return it with its token (shown once).

    Refused (:class:`PartyError`) when a system admin exists already: further admins are
    created through the api by that admin.
    """
    admin = kafka.admin_client(config.kafka.bootstrap_servers, config.kafka.client_config)
    state = ControlState(config)
    ensure_hub_topics(
        admin, state.topics, config.kafka.delivery_partitions, config.kafka.replication_factor
    )
    state.start(timeout)
    try:
        parties = state.party_map()
        existing = sorted(p.id for p in parties.values() if Role.SYSTEM_ADMIN in p.roles)
        if existing:
            raise PartyError(
                409,
                f"a system admin exists already ({', '.join(existing)}); "
                "create further parties through the api",
            )
        party = rules.build_party(
            {
                "id": party_id,
                "name": name,
                "kind": PartyKind.DEPARTMENT,
                "region_code": region_code,
                "roles": (Role.SYSTEM_ADMIN,),
            },
            parties,
        )
        party, token = rules.issue_token(party, token_ttl_days, now_ms())
        state.put_party(party)
        ensure_pseudonym_root(state.keys, LocalFileKms.from_config(config.crypto))
        return party, token
    finally:
        state.stop()
