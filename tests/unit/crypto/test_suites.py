from __future__ import annotations

import os

import pytest

from hub.crypto import FrameAuthError, PayloadSuite, new_data_key
from hub.crypto.suites import NONCE_LEN, TAG_LEN, open_, seal


def test_key_lengths() -> None:
    assert len(new_data_key(PayloadSuite.AES_256_GCM)) == 32
    assert len(new_data_key(PayloadSuite.SM4_GCM)) == 16
    assert new_data_key(PayloadSuite.AES_256_GCM) != new_data_key(PayloadSuite.AES_256_GCM)


def test_round_trip(suite: PayloadSuite) -> None:
    key = new_data_key(suite)
    nonce = os.urandom(NONCE_LEN)
    sealed = seal(suite, key, nonce, b"plain text", b"aad")
    assert len(sealed) == len(b"plain text") + TAG_LEN
    assert open_(suite, key, nonce, sealed, b"aad") == b"plain text"
    assert open_(suite, key, nonce, seal(suite, key, nonce, b"", b""), b"") == b""


@pytest.mark.parametrize("change", ["key", "nonce", "aad", "ciphertext", "tag", "short"])
def test_any_change_fails_authentication(suite: PayloadSuite, change: str) -> None:
    key, nonce, aad = new_data_key(suite), os.urandom(NONCE_LEN), b"header"
    sealed = seal(suite, key, nonce, b"secret payload", aad)
    if change == "key":
        key = new_data_key(suite)
    elif change == "nonce":
        nonce = bytes(NONCE_LEN)
    elif change == "aad":
        aad = b"headeR"
    elif change == "ciphertext":
        sealed = bytes([sealed[0] ^ 1]) + sealed[1:]
    elif change == "tag":
        sealed = sealed[:-1] + bytes([sealed[-1] ^ 0x80])
    else:
        sealed = sealed[: TAG_LEN - 1]
    with pytest.raises(FrameAuthError):
        open_(suite, key, nonce, sealed, aad)


def test_wrong_key_length(suite: PayloadSuite) -> None:
    other = PayloadSuite.SM4_GCM if suite is PayloadSuite.AES_256_GCM else PayloadSuite.AES_256_GCM
    key = new_data_key(other)
    with pytest.raises(ValueError, match="key"):
        seal(suite, key, bytes(NONCE_LEN), b"x", b"")
    with pytest.raises(FrameAuthError):
        open_(suite, key, bytes(NONCE_LEN), bytes(32), b"")


def test_nonce_must_be_96_bits(suite: PayloadSuite) -> None:
    with pytest.raises(ValueError, match="nonce"):
        seal(suite, new_data_key(suite), bytes(16), b"x", b"")


def test_sm4_gcm_rfc8998_vector() -> None:
    # RFC 8998, Appendix A.1
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    expected = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"
    )
    assert seal(PayloadSuite.SM4_GCM, key, nonce, plaintext, aad) == expected
    assert open_(PayloadSuite.SM4_GCM, key, nonce, expected, aad) == plaintext
