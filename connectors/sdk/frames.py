"""Opening delivery frames on the subscriber side: keys, verification, records.

Shared by the direct Kafka client and the gateway client, so both apply the same checks
in the same order (``docs/wire-format.md`` §3.2): the recipient, the data key (fetched
from the api once per key id — the key epoch — and cached), the AEAD tag over header and
entries, the entries' offsets, and the replay guard of :class:`FrameSequenceChecker`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from connectors.sdk.errors import (
    FrameRejected,
    KeyFetchError,
    SubscriptionRevoked,
    TamperedFrame,
    WrongKey,
)
from connectors.sdk.hubclient import HubClient
from connectors.sinks.base import DeliveredRecord
from hub import metrics
from hub.crypto.errors import (
    FrameAuthError,
    FrameFormatError,
    FrameReplayError,
    WrongRecipientError,
)
from hub.crypto.frames import FrameSequenceChecker, open_frame, peek_header
from hub.crypto.keyrelease import KemSuite

log = logging.getLogger(__name__)

KEY_FETCH_ATTEMPTS = 5
KEY_CACHE_SIZE = 256


class FrameOpener:
    """Verifies and decrypts the frames of one recipient."""

    def __init__(
        self,
        recipient: str,
        hub: HubClient,
        private_key: bytes,
        kem: KemSuite = KemSuite.X25519,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.recipient = recipient
        self.hub = hub
        self._private_key = private_key
        self._kem = kem
        self._sleep = sleep
        self._keys: OrderedDict[bytes, bytes] = OrderedDict()
        self.frames = 0
        self.replays_skipped = 0
        self.keys_fetched = 0

    def _key_for(self, subscription: str) -> Callable[[bytes], bytes]:
        def key_for(key_id: bytes) -> bytes:
            key = self._keys.get(key_id)
            if key is None:
                key = self._fetch_key(subscription, key_id)
                self._keys[key_id] = key
                if len(self._keys) > KEY_CACHE_SIZE:
                    self._keys.popitem(last=False)
            else:
                self._keys.move_to_end(key_id)
            return key

        return key_for

    def _fetch_key(self, subscription: str, key_id: bytes) -> bytes:
        """Key release with retries for transient failures (hub unreachable or still
        catching up); a refusal (revoked, suspended, expired) or a key that does not open
        with our private key is final at once."""
        delay, attempt = 0.2, 1
        while True:
            try:
                key = self.hub.release_key(
                    self.recipient, subscription, key_id, self._private_key, self._kem
                )
                self.keys_fetched += 1
                return key
            except (SubscriptionRevoked, WrongKey):
                raise
            except KeyFetchError as exc:
                if attempt >= KEY_FETCH_ATTEMPTS:
                    raise
                log.warning("key fetch failed (attempt %d): %s; retrying", attempt, exc)
                self._sleep(delay)
                delay, attempt = min(delay * 2, 5.0), attempt + 1

    def open(self, frame: bytes, sequence: FrameSequenceChecker) -> list[DeliveredRecord]:
        """The frame's records; ``[]`` for a frame already processed (a replay, skipped).

        Raises TamperedFrame (tag mismatch, malformed), FrameRejected (another recipient's
        frame), WrongKey, SubscriptionRevoked or KeyFetchError.
        """
        try:
            header = peek_header(frame)
            sequence.check(header)
            header, entries = open_frame(frame, self.recipient, self._key_for(header.subscription))
        except FrameReplayError as exc:
            metrics.SDK_FRAMES.labels("replay").inc()
            self.replays_skipped += 1
            log.warning("skipping frame already processed: %s", exc)
            return []
        except FrameAuthError as exc:
            metrics.SDK_FRAMES.labels("rejected").inc()
            raise TamperedFrame(
                f"frame rejected: {exc} — it was altered after sealing, or sealed under "
                "another key than the one released for its key id"
            ) from exc
        except FrameFormatError as exc:
            metrics.SDK_FRAMES.labels("rejected").inc()
            raise TamperedFrame(f"frame rejected: malformed ({exc})") from exc
        except WrongRecipientError as exc:
            metrics.SDK_FRAMES.labels("rejected").inc()
            raise FrameRejected(f"frame rejected: {exc}") from exc
        sequence.record(header)
        metrics.SDK_FRAMES.labels("ok").inc()
        self.frames += 1
        received = int(time.time() * 1000)
        records = []
        for entry in entries:
            codec = self.hub.codec(entry.schema_id)
            records.append(
                DeliveredRecord(
                    resource=header.resource,
                    subscription=header.subscription,
                    record_id=entry.record_id,
                    source_topic=entry.topic,
                    source_partition=entry.partition,
                    source_offset=entry.offset,
                    ingested_at_ms=entry.ingested_at_ms,
                    received_at_ms=received,
                    data=codec.decode(entry.payload),
                )
            )
        return records
