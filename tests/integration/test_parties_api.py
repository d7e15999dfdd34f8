"""Parties, tokens and keys through REST on real Kafka, written through one api instance
and checked through the other."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest

from hub.apiclient import ApiClient, ApiError
from hub.crypto.keyrelease import KemSuite, generate_recipient_key
from hub.parties import commands as party_commands
from tests.integration import test_subscriptions_lifecycle as lifecycle
from tests.integration.test_subscriptions_lifecycle import (
    PARTIES,
    ControlPlane,
    eventually,
    eventually_refused,
)

pytestmark = pytest.mark.integration

plane = lifecycle.plane  # the two-instance control plane fixture


def key_body(kem: KemSuite) -> dict[str, str]:
    _, public = generate_recipient_key(kem)
    return {"kem": kem.value, "key": base64.b64encode(public).decode()}


def test_party_writes_validate_and_credentials_rotate(plane: ControlPlane) -> None:
    plane.create_parties(PARTIES)
    admin = plane.api("a")
    bad = [
        ({"region_code": "11010500100X"}, 400, "region_code"),
        ({"region_code": "110105002001", "parent": "jianwai"}, 400, "does not extend"),
        ({"id": "rsj"}, 409, "already exists"),
        ({"roles": ["auditor", "subscriber"]}, 409, "三员"),
        ({"roles": ["approver"]}, 400, "act for a department"),
        ({"parent": "ghost"}, 400, "does not exist"),
    ]
    base = {"id": "new-unit", "name": "新社区", "kind": "unit", "region_code": "110105001002"}
    for change, status, message in bad:
        with pytest.raises(ApiError) as err:
            admin.call("POST", "/v1/parties", {**base, **change})
        assert err.value.status == status and message in err.value.message, change
    with pytest.raises(ApiError) as err:
        plane.api("a", "rsj").call("POST", "/v1/parties", base)
    assert err.value.status == 403

    # Rotation through a: the old token stops on b, the new one works there.
    old = plane.tokens["yonganli"]
    rotated = ApiClient(plane.a.api_url, old).call("POST", "/v1/parties/yonganli/token", {})
    new = rotated["token"]
    assert new != old and rotated["party"]["has_token"] and "token_hash" not in rotated["party"]
    eventually(lambda: ApiClient(plane.b.api_url, new).call("GET", "/v1/parties/yonganli"))
    with pytest.raises(ApiError) as err:
        ApiClient(plane.b.api_url, old).call("GET", "/v1/parties/yonganli")
    assert err.value.status == 401
    # A system admin may not take over a 三员 account by rotating its token.
    with pytest.raises(ApiError) as err:
        admin.call("POST", "/v1/parties/secadmin/token", {})
    assert err.value.status == 403 and "三员" in err.value.message

    # Keys: X25519 then ML-KEM-768+X25519; the newest is last, the old one kept.
    community = ApiClient(plane.b.api_url, new)
    community.call("POST", "/v1/parties/yonganli/keys", key_body(KemSuite.X25519))
    shown = eventually(
        lambda: plane.api("a", "secadmin").call(
            "POST", "/v1/parties/yonganli/keys", key_body(KemSuite.MLKEM768_X25519)
        )
    )
    assert [k["kem"] for k in shown["public_keys"]] == ["x25519", "mlkem768-x25519"]
    with pytest.raises(ApiError) as err:
        community.call("POST", "/v1/parties/yonganli/keys", {"kem": "x25519", "key": "AAAA"})
    assert err.value.status == 400 and "x25519" in err.value.message
    with pytest.raises(ApiError) as err:
        community.call("POST", "/v1/parties/jianwai/keys", key_body(KemSuite.X25519))
    assert err.value.status == 403

    # Visibility: a street sees itself and its communities; a community only itself.
    street = plane.api("b", "jianwai")
    seen = eventually(
        lambda: street.call("GET", "/v1/parties"), lambda answer: answer["count"] == 2
    )
    assert [p["id"] for p in seen["parties"]] == ["jianwai", "yonganli"]
    assert community.call("GET", "/v1/parties")["count"] == 1
    with pytest.raises(ApiError) as err:
        community.call("GET", "/v1/parties/jianwai")
    assert err.value.status == 403

    # Suspension through a stops the party's token on b; resuming restores it.
    admin.call("POST", "/v1/parties/yonganli/suspend", {"reason": "撤并"})
    error = eventually_refused(lambda: community.call("GET", "/v1/parties/yonganli"))
    assert error.status == 403 and "suspended" in error.message
    with pytest.raises(ApiError) as err:
        admin.call("POST", "/v1/parties/sysadmin/suspend", {})
    assert err.value.status == 403
    admin.call("POST", "/v1/parties/yonganli/resume", {})
    eventually(lambda: community.call("GET", "/v1/parties/yonganli"))
    updated = community.call("PATCH", "/v1/parties/yonganli", {"contact": "010-65000000"})
    assert updated["contact"] == "010-65000000"
    with pytest.raises(ApiError) as err:
        community.call("PATCH", "/v1/parties/yonganli", {"name": "改名"})
    assert err.value.status == 403


def run_party_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="govhub")
    party_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["party", *argv])
    code = int(args.func(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_party_cli(plane: ControlPlane, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    admin = ["--api-url", plane.a.api_url, "--token", plane.admin_token]
    code, out, _ = run_party_cli(
        capsys, "create", "chaowai", "--name", "朝外街道", "--kind", "unit",
        "--region", "110105002000", "--contact", "010-1", *admin,
    )  # fmt: skip
    assert code == 0 and "token (shown once" in out
    token = out.strip().splitlines()[-1]
    own = ["--api-url", plane.b.api_url, "--token", token]
    eventually(lambda: ApiClient(plane.b.api_url, token).call("GET", "/v1/parties/chaowai"))
    key_file = str(tmp_path / "chaowai.key")
    wrong = ["--api-url", plane.b.api_url, "--token", "ghp_chaowai.wrong"]
    code, _, err = run_party_cli(capsys, "add-key", "chaowai", "--generate", key_file, *wrong)
    assert code == 2 and "401" in err and not (tmp_path / "chaowai.key").exists()
    code, out, _ = run_party_cli(capsys, "add-key", "chaowai", "--generate", key_file, *own)
    assert code == 0 and "public keys 1 (newest x25519)" in out
    assert (tmp_path / "chaowai.key").stat().st_mode & 0o777 == 0o600
    code, out, _ = run_party_cli(capsys, "rotate-token", "chaowai", *own)
    assert code == 0 and out.strip().splitlines()[-1] != token
    code, _, err = run_party_cli(capsys, "set-roles", "sysadmin", "auditor", *admin)
    assert code == 2 and err.startswith("govhub: error: 403") and "role escalation" in err
    code, _, err = run_party_cli(
        capsys, "create", "bad", "--name", "x", "--kind", "unit", "--region", "123", *admin
    )
    assert code == 2 and "region_code" in err and err.count("\n") == 1
