"""Test vectors of docs/wire-format.md.

The vectors are computed here from fixed inputs and must appear, byte for byte, in the
document (as ``<!-- vector: NAME -->`` followed by a hex block). To print the blocks for
the document after a deliberate format change::

    .venv/bin/python -m tests.unit.crypto.test_wire_vectors
"""

from __future__ import annotations

import re
import tempfile
import textwrap
from pathlib import Path

import pytest

from hub.crypto import (
    DataKeyRecord,
    FrameEntry,
    FrameHeader,
    LocalFileKms,
    PayloadSuite,
    open_frame,
    unwrap_data_key,
)
from hub.crypto.frames import encode_entries, seal_frame
from hub.crypto.keyrelease import release_info
from hub.crypto.keys import unwrap_context

DOC = Path(__file__).resolve().parents[3] / "docs" / "wire-format.md"

RECIPIENT = "330106001000"
KEY_ID = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
AES_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
NONCE = bytes.fromhex("cafebabefacedbaddecaf888")
KEK = bytes.fromhex("404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
KEK_NONCE = bytes.fromhex("0f0e0d0c0b0a090807060504")
CREATED_AT_MS = 1_700_000_000_000
NOT_AFTER_MS = 1_700_086_400_000

ENTRIES = [
    FrameEntry(
        schema_id=101,
        topic="govhub.src.scj.enterprise",
        partition=3,
        offset=1000,
        record_id="rec-0001",
        ingested_at_ms=1_700_000_000_000,
        payload=b"\x24913301060000000001",
    ),
    FrameEntry(
        schema_id=101,
        topic="govhub.src.scj.enterprise",
        partition=3,
        offset=1001,
        record_id="rec-0002",
        ingested_at_ms=1_700_000_000_250,
        payload=b"\x24913301060000000002",
    ),
]


def header(suite: PayloadSuite) -> FrameHeader:
    return FrameHeader(
        suite=suite,
        recipient=RECIPIENT,
        resource="enterprise-registration",
        subscription="sub-0001",
        key_id=KEY_ID,
        source_partition=3,
        first_offset=1000,
        last_offset=1001,
    )


def compute_vectors() -> dict[str, bytes]:
    context = unwrap_context(
        RECIPIENT, KEY_ID, PayloadSuite.AES_256_GCM, CREATED_AT_MS, NOT_AFTER_MS
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kek"
        path.write_bytes(KEK)
        path.chmod(0o600)
        kms = LocalFileKms(path)
        wrapped = kms._wrap(AES_KEY, context, KEK_NONCE)
    return {
        "entries": encode_entries(ENTRIES),
        "header-aes-256-gcm": header(PayloadSuite.AES_256_GCM).to_bytes(),
        "frame-aes-256-gcm": seal_frame(header(PayloadSuite.AES_256_GCM), ENTRIES, AES_KEY, NONCE),
        "frame-sm4-gcm": seal_frame(header(PayloadSuite.SM4_GCM), ENTRIES, SM4_KEY, NONCE),
        "dek-context": context,
        "wrapped-dek": wrapped,
        "key-release-info": release_info(RECIPIENT, KEY_ID),
    }


def doc_vectors() -> dict[str, bytes]:
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- vector: ([\w-]+) -->\s*```hex\n(.*?)```", text, re.DOTALL)
    return {name: bytes.fromhex("".join(body.split())) for name, body in found}


def test_document_carries_every_vector() -> None:
    assert doc_vectors() == compute_vectors()


@pytest.mark.parametrize(
    "suite, key", [(PayloadSuite.AES_256_GCM, AES_KEY), (PayloadSuite.SM4_GCM, SM4_KEY)]
)
def test_document_frames_open(suite: PayloadSuite, key: bytes) -> None:
    name = "frame-aes-256-gcm" if suite is PayloadSuite.AES_256_GCM else "frame-sm4-gcm"
    assert open_frame(doc_vectors()[name], RECIPIENT, {KEY_ID: key}.__getitem__) == (
        header(suite),
        ENTRIES,
    )


def test_document_kek_id_and_key_record() -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- example: data-key-record -->\s*```json\n(.*?)\n```", text, re.DOTALL)
    assert match is not None
    record = DataKeyRecord.from_json(match.group(1).encode())
    assert record.to_json() == match.group(1).encode()
    assert record.wrapped == compute_vectors()["wrapped-dek"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kek"
        path.write_bytes(KEK)
        path.chmod(0o600)
        kms = LocalFileKms(path)
        assert f"KEK id `{kms.kek_id}`" in text
        assert unwrap_data_key(kms, record) == AES_KEY


def test_document_confluent_example() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = bytes.fromhex("00 00000065 24 393133333031303630303030303030303031")
    assert "00 00000065 24 393133333031303630303030303030303031" in text
    assert example == b"\x00" + (101).to_bytes(4, "big") + ENTRIES[0].payload


def render() -> str:
    blocks = []
    for name, value in compute_vectors().items():
        lines = "\n".join(textwrap.wrap(value.hex(), 64))
        blocks.append(f"<!-- vector: {name} -->\n```hex\n{lines}\n```\n({len(value)} bytes)\n")
    return "\n".join(blocks)


if __name__ == "__main__":
    print(render())
