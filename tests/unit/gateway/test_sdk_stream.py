"""The gateway client's checks on plain data: stream continuity, SSE parsing, settings,
and the frame checks with clear errors (tampered, wrong key, another recipient)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.sdk.errors import FrameRejected, SequenceGap, TamperedFrame, WrongKey
from connectors.sdk.frames import FrameOpener
from connectors.sdk.gateway import GatewaySettings, SseParser, StreamChain
from hub.crypto import FrameEntry, FrameHeader, PayloadSuite, new_data_key, seal_frame
from hub.crypto.frames import FrameSequenceChecker
from hub.crypto.keyrelease import (
    KemSuite,
    generate_recipient_key,
    open_key_for_recipient,
    seal_key_for_recipient,
)
from hub.gateway.wire import FrameEvent, PositionEvent, WelcomeEvent
from hub.registry.schemas import AvroCodec

SCHEMA = '{"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}'
KEY_ID = bytes(range(16))


def welcome(partition: int = 2, next_offset: int = 10) -> WelcomeEvent:
    return WelcomeEvent("me", partition, next_offset, "gw")


def test_chain_accepts_a_continuous_stream_and_skips_repeats() -> None:
    chain = StreamChain(2, 10)
    chain.welcome(welcome())
    assert chain.frame(FrameEvent(10, 12, 1, 0, b""))
    assert chain.position(PositionEvent(20))
    assert not chain.position(PositionEvent(15))
    assert chain.frame(FrameEvent(20, 25, 1, 0, b""))
    assert not chain.frame(FrameEvent(13, 24, 1, 0, b""))  # already written: skipped
    assert chain.next_offset == 26 and chain.duplicates == 1


def test_chain_reports_gaps() -> None:
    chain = StreamChain(2, 10)
    chain.welcome(welcome())
    with pytest.raises(SequenceGap) as info:
        chain.frame(FrameEvent(11, 12, 1, 0, b""))
    assert info.value.missing == (10, 11)
    with pytest.raises(SequenceGap):
        StreamChain(2, 10).welcome(welcome(next_offset=11))
    with pytest.raises(SequenceGap):
        StreamChain(3, 10).welcome(welcome())
    with pytest.raises(SequenceGap):
        StreamChain(None, None).frame(FrameEvent(0, 1, 1, 0, b""))
    fresh = StreamChain(None, None)
    fresh.welcome(welcome(5, 0))
    assert fresh.partition == 5 and fresh.next_offset == 0


def test_sse_parser_handles_any_chunking() -> None:
    stream = (
        b": keep-alive\n\n"
        b'event: welcome\ndata: {"a": 1}\n\n'
        b'id: 0:5\nevent: frame\ndata: {"b": 2}\r\n\r\n'
        b"data: line1\ndata: line2\n\n"
    )
    expected = [("welcome", b'{"a": 1}'), ("frame", b'{"b": 2}'), ("message", b"line1\nline2")]
    for size in (1, 2, 3, 7, len(stream)):
        parser = SseParser()
        out = []
        for i in range(0, len(stream), size):
            out += parser.feed(stream[i : i + size])
        assert out == expected


def test_settings_fail_early_with_the_field() -> None:
    base: dict[str, Any] = {
        "gateway_urls": ("http://gw:8490",),
        "api_url": "http://api",
        "recipient": "me",
        "token": "t",
        "private_key": b"k" * 32,
    }
    GatewaySettings(**base)
    with pytest.raises(ValueError, match="gateway_urls"):
        GatewaySettings(**{**base, "gateway_urls": ()})
    with pytest.raises(ValueError, match="gateway_urls"):
        GatewaySettings(**{**base, "gateway_urls": ("gw:8490",)})
    with pytest.raises(ValueError, match="protocol"):
        GatewaySettings(**{**base, "protocol": "grpc"})
    secret = GatewaySettings(**{**base, "token": "ghp_me.s3cret"})
    assert "s3cret" not in repr(secret) and "kkkk" not in repr(secret)


class LocalKeyRelease:
    """The two calls FrameOpener makes on the hub, answered with real HPKE and Avro: the
    data key sealed to the registered public key, as the api's key release does."""

    def __init__(self, dek: bytes, public_key: bytes) -> None:
        self.dek = dek
        self.public_key = public_key
        self.released = 0

    def release_key(
        self, recipient: str, subscription: str, key_id: bytes, private_key: bytes, kem: KemSuite
    ) -> bytes:
        self.released += 1
        sealed = seal_key_for_recipient(self.dek, self.public_key, kem, recipient, key_id)
        try:
            return open_key_for_recipient(sealed, private_key, kem, recipient, key_id)
        except Exception as exc:
            raise WrongKey(str(exc)) from None

    def codec(self, schema_id: int) -> AvroCodec:
        return AvroCodec(SCHEMA)


def frame_for(recipient: str, dek: bytes, first: int = 100) -> bytes:
    codec = AvroCodec(SCHEMA)
    suite = PayloadSuite.AES_256_GCM
    header = FrameHeader(suite, recipient, "dibao", "sub-1", KEY_ID, 0, first, first + 1)
    entries = [
        FrameEntry(1, "src", 0, first + i, f"r{i}", 1_700_000_000_000, codec.encode({"n": i}))
        for i in range(2)
    ]
    return seal_frame(header, entries, dek)


def opener(release: LocalKeyRelease, private: bytes) -> FrameOpener:
    return FrameOpener("me", release, private, KemSuite.X25519)  # type: ignore[arg-type]


def test_frames_open_with_the_released_key_cached_per_key_id() -> None:
    private, public = generate_recipient_key()
    dek = new_data_key(PayloadSuite.AES_256_GCM)
    release = LocalKeyRelease(dek, public)
    o = opener(release, private)
    sequence = FrameSequenceChecker()
    records = o.open(frame_for("me", dek), sequence)
    assert [r.data["n"] for r in records] == [0, 1]
    assert o.open(frame_for("me", dek, first=102), sequence)
    assert release.released == 1  # one release per key id (epoch)
    assert o.open(frame_for("me", dek, first=100), sequence) == []  # replay: skipped
    assert o.replays_skipped == 1


def test_a_tampered_frame_is_rejected_with_a_clear_error() -> None:
    private, public = generate_recipient_key()
    dek = new_data_key(PayloadSuite.AES_256_GCM)
    good = frame_for("me", dek)
    for position in (49, len(good) - 5):  # the resource name (AAD), a ciphertext byte
        bad = bytearray(good)
        bad[position] ^= 0x01
        with pytest.raises(TamperedFrame, match="altered"):
            opener(LocalKeyRelease(dek, public), private).open(bytes(bad), FrameSequenceChecker())
    with pytest.raises(TamperedFrame, match="malformed"):
        opener(LocalKeyRelease(dek, public), private).open(b"GHDF\x01", FrameSequenceChecker())


def test_wrong_private_key_and_wrong_recipient() -> None:
    private, public = generate_recipient_key()
    other_private, _ = generate_recipient_key()
    dek = new_data_key(PayloadSuite.AES_256_GCM)
    with pytest.raises(WrongKey):
        opener(LocalKeyRelease(dek, public), other_private).open(
            frame_for("me", dek), FrameSequenceChecker()
        )
    with pytest.raises(FrameRejected, match="not 'me'"):
        opener(LocalKeyRelease(dek, public), private).open(
            frame_for("someone-else", dek), FrameSequenceChecker()
        )
