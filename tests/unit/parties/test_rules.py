import base64

import pytest
from pydantic import ValidationError

from hub.crypto.keyrelease import KemSuite, generate_recipient_key
from hub.parties import rules
from hub.parties.model import (
    Party,
    PartyKind,
    Role,
    hash_token,
    new_token,
    token_party,
    verify_token,
)
from hub.parties.rules import PartyError

DISTRICT = Party(id="chaoyang", name="朝阳区", kind=PartyKind.UNIT, region_code="110105000000")
STREET = Party(
    id="jianwai",
    name="建外街道",
    kind=PartyKind.UNIT,
    region_code="110105001000",
    parent="chaoyang",
)
MZJ = Party(id="mzj", name="民政局", kind=PartyKind.DEPARTMENT, region_code="110105000000")
PARTIES = {p.id: p for p in (DISTRICT, STREET, MZJ)}
ADMIN = Party(
    id="sysadmin",
    name="系统管理员",
    kind=PartyKind.DEPARTMENT,
    region_code="110105000000",
    roles=(Role.SYSTEM_ADMIN,),
)


def build(**fields: object) -> Party:
    base = {"id": "new", "name": "新", "kind": "unit", "region_code": "110105001001"}
    return rules.build_party({**base, **fields}, PARTIES)


def test_a_community_code_must_extend_its_streets() -> None:
    assert build(parent="jianwai").parent == "jianwai"
    with pytest.raises(PartyError, match="does not extend") as err:
        build(region_code="110105002001", parent="jianwai")
    assert err.value.status == 400
    with pytest.raises(PartyError, match="must sit below"):
        build(region_code="110105001000", parent="jianwai")  # a street under a street
    with pytest.raises(PartyError, match="does not exist"):
        build(parent="ghost")
    with pytest.raises(PartyError, match="own parent"):
        rules.check_placement(STREET.model_copy(update={"parent": "jianwai"}), PARTIES)
    with pytest.raises(PartyError, match="cycle"):
        looped = {**PARTIES, "chaoyang": DISTRICT.model_copy(update={"parent": "jianwai"})}
        rules.check_placement(STREET, looped)


def test_bad_input_is_a_clear_400_or_409() -> None:
    with pytest.raises(PartyError, match="region_code") as err:
        build(region_code="11010500100X")
    assert err.value.status == 400
    with pytest.raises(PartyError, match="already exists") as dup:
        build(id="mzj")
    assert dup.value.status == 409
    with pytest.raises(PartyError, match="not a department"):
        build(department="jianwai")
    with pytest.raises(PartyError, match="act for a department"):
        build(roles=["approver"])  # a unit with no department
    department = build(kind="department", region_code="110105000000", roles=["approver"])
    assert department.acts_for == "new"
    assert build(department="mzj", roles=["approver"]).acts_for == "mzj"


@pytest.mark.parametrize(
    "roles",
    [
        (Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN),
        (Role.SECURITY_ADMIN, Role.AUDITOR),
        (Role.SECURITY_ADMIN, Role.APPROVER),
        (Role.AUDITOR, Role.SUBSCRIBER),
    ],
)
def test_three_person_separation_on_every_write(roles: tuple[Role, ...]) -> None:
    with pytest.raises(ValidationError, match="三员"):
        Party(id="x", name="x", kind=PartyKind.DEPARTMENT, region_code="110105000000", roles=roles)
    with pytest.raises(PartyError, match="三员") as err:
        rules.set_roles(ADMIN, MZJ, roles)
    assert err.value.status == 409


def test_nobody_changes_their_own_roles() -> None:
    with pytest.raises(PartyError, match="role escalation") as err:
        rules.set_roles(ADMIN, ADMIN, (Role.SYSTEM_ADMIN, Role.AUDITOR))
    assert err.value.status == 403
    updated = rules.set_roles(ADMIN, MZJ, (Role.PUBLISHER, Role.APPROVER, Role.APPROVER))
    assert updated.roles == (Role.PUBLISHER, Role.APPROVER) and updated.version == 1


def test_tokens_name_their_party_and_expire() -> None:
    party, token = rules.issue_token(MZJ, 30, 1_000)
    assert token_party(token) == "mzj" and token.startswith("ghp_mzj.")
    assert party.token_hash is not None and token not in party.token_hash
    assert verify_token(token, party.token_hash) and not verify_token(token + "x", party.token_hash)
    assert party.token_expires_at_ms == 1_000 + 30 * 86_400_000
    assert party.token_expired(party.token_expires_at_ms) and not party.token_expired(1_000)
    assert token_party(new_token()) is None and token_party("ghp_.abc") is None
    assert not verify_token("x", "scrypt$zz$00") and not verify_token("x", "md5$aa$bb")
    assert verify_token("t", hash_token("t"))


def test_public_keys_are_validated_and_rotation_keeps_old_ones() -> None:
    _, x_public = generate_recipient_key(KemSuite.X25519)
    _, pq_public = generate_recipient_key(KemSuite.MLKEM768_X25519)
    first = rules.decode_public_key("x25519", base64.b64encode(x_public).decode(), 1)
    second = rules.decode_public_key("mlkem768-x25519", base64.b64encode(pq_public).decode(), 2)
    party = rules.add_public_key(rules.add_public_key(MZJ, first), second)
    assert [k.kem for k in party.public_keys] == ["x25519", "mlkem768-x25519"]  # newest last
    with pytest.raises(PartyError, match="already has this"):
        rules.add_public_key(party, first)
    with pytest.raises(PartyError, match="base64"):
        rules.decode_public_key("x25519", "not base64!", 1)
    with pytest.raises(PartyError, match="not a usable x25519"):
        rules.decode_public_key("x25519", base64.b64encode(b"short").decode(), 1)
    with pytest.raises(PartyError, match="not a usable mlkem768"):
        rules.decode_public_key("mlkem768-x25519", base64.b64encode(x_public).decode(), 1)


def test_mtls_subjects_are_unique() -> None:
    taken = {**PARTIES, "mzj": MZJ.model_copy(update={"mtls_subject": "CN=mzj"})}
    with pytest.raises(PartyError, match="already belongs to party mzj") as err:
        rules.check_mtls_subject(STREET.model_copy(update={"mtls_subject": "CN=mzj"}), taken)
    assert err.value.status == 409


def test_token_hashes_carry_their_cost() -> None:
    cheap = hash_token("t", cost=10)
    assert cheap.startswith("scrypt:ln=10$") and verify_token("t", cheap)
    assert not verify_token("u", cheap)
    dear = hash_token("t", cost=16)
    assert dear.startswith("scrypt:ln=16$") and verify_token("t", dear)
    # The default cost keeps the original form, so hashes stored before still verify.
    assert hash_token("t").startswith("scrypt$")
    # A cost outside the allowed range is neither made nor accepted.
    with pytest.raises(ValueError):
        hash_token("t", cost=9)
    for scheme in ("scrypt:ln=9", "scrypt:ln=30", "scrypt:n=10", "scrypt:ln=", "scrypt:"):
        assert not verify_token("t", scheme + cheap[cheap.index("$") :])
