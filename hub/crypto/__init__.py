"""Hub cryptography: delivery frames, payload suites, KEK/KMS, data keys, key release.

Pure logic, no Kafka. Layouts are specified in ``docs/wire-format.md``.
"""

from hub.crypto.errors import (
    CryptoError,
    FrameAuthError,
    FrameFormatError,
    FrameReplayError,
    KeyFileError,
    KeyRecordError,
    KeyReleaseError,
    KeyUnwrapError,
    UnknownKeyError,
    WrongRecipientError,
)
from hub.crypto.frames import (
    MAX_FRAME_BYTES,
    FrameEntry,
    FrameHeader,
    FrameSealer,
    FrameSequenceChecker,
    FrameTooLargeError,
    decode_entries,
    encode_entries,
    entry_size,
    frame_overhead,
    open_frame,
    peek_header,
    seal_frame,
)
from hub.crypto.keyrelease import (
    KemSuite,
    generate_recipient_key,
    load_private_key,
    load_public_key,
    open_key_for_recipient,
    public_key_of,
    seal_key_for_recipient,
)
from hub.crypto.keys import DataKeyRecord, new_data_key_record, unwrap_data_key
from hub.crypto.kms import Kms, LocalFileKms
from hub.crypto.suites import NONCE_LEN, PayloadSuite, new_data_key

__all__ = [
    "MAX_FRAME_BYTES",
    "NONCE_LEN",
    "CryptoError",
    "DataKeyRecord",
    "FrameAuthError",
    "FrameEntry",
    "FrameFormatError",
    "FrameHeader",
    "FrameReplayError",
    "FrameSealer",
    "FrameSequenceChecker",
    "FrameTooLargeError",
    "KemSuite",
    "KeyFileError",
    "KeyRecordError",
    "KeyReleaseError",
    "KeyUnwrapError",
    "Kms",
    "LocalFileKms",
    "PayloadSuite",
    "UnknownKeyError",
    "WrongRecipientError",
    "decode_entries",
    "encode_entries",
    "entry_size",
    "frame_overhead",
    "generate_recipient_key",
    "load_private_key",
    "load_public_key",
    "new_data_key",
    "new_data_key_record",
    "open_frame",
    "open_key_for_recipient",
    "peek_header",
    "public_key_of",
    "seal_frame",
    "seal_key_for_recipient",
    "unwrap_data_key",
]
