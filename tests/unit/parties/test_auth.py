import pytest

from hub.api.auth import AuthError, TokenAuthenticator
from hub.parties import rules
from hub.parties.model import Party, PartyKind, PartyStatus, hash_token, new_token


class FakeState:
    def __init__(self, *parties: Party) -> None:
        self.rows = {p.id: p for p in parties}
        self.generation = 0

    def party(self, party_id: str) -> Party | None:
        return self.rows.get(party_id)

    def party_map(self) -> dict[str, Party]:
        return dict(self.rows)

    def put(self, party: Party) -> None:
        self.rows[party.id] = party
        self.generation += 1


BASE = Party(id="mzj", name="民政局", kind=PartyKind.DEPARTMENT, region_code="110105000000")


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_expiry_and_rotation_are_honoured_even_when_cached() -> None:
    party, token = rules.issue_token(BASE, 1, 0)
    state = FakeState(party)
    now = [1_000]
    auth = TokenAuthenticator(state, clock=lambda: now[0])  # type: ignore[arg-type]
    assert auth.authenticate(bearer(token)).id == "mzj"
    assert auth.authenticate(bearer(token)).id == "mzj"  # cached: no second slow hash
    now[0] = party.token_expires_at_ms  # type: ignore[assignment]
    with pytest.raises(AuthError, match="expired") as expired:
        auth.authenticate(bearer(token))
    assert expired.value.status == 401
    now[0] = 1_000
    rotated, new = rules.issue_token(party, 1, 0)
    state.put(rotated)
    with pytest.raises(AuthError, match="unknown token"):
        auth.authenticate(bearer(token))  # the old token stops at once
    assert auth.authenticate(bearer(new)).id == "mzj"
    state.put(rotated.model_copy(update={"status": PartyStatus.SUSPENDED}))
    with pytest.raises(AuthError, match="suspended") as suspended:
        auth.authenticate(bearer(new))
    assert suspended.value.status == 403


def test_malformed_headers_and_tokens_without_a_party_name() -> None:
    legacy = new_token()
    state = FakeState(BASE.model_copy(update={"token_hash": hash_token(legacy)}))
    auth = TokenAuthenticator(state)  # type: ignore[arg-type]
    assert auth.authenticate(bearer(legacy)).id == "mzj"  # provisioned outside the api
    for header in (None, "", "Basic abc", "Bearer ", "Bearer " + "x" * 600):
        with pytest.raises(AuthError) as err:
            auth.authenticate(header)
        assert err.value.status == 401
    with pytest.raises(AuthError, match="unknown token"):
        auth.authenticate(bearer("ghp_ghost.secret"))


def test_certificate_subjects_map_to_parties() -> None:
    state = FakeState(BASE.model_copy(update={"mtls_subject": "CN=mzj,O=朝阳区民政局"}))
    auth = TokenAuthenticator(state)  # type: ignore[arg-type]
    assert auth.authenticate_certificate("CN=mzj,O=朝阳区民政局").id == "mzj"
    with pytest.raises(AuthError):
        auth.authenticate_certificate("CN=other")
