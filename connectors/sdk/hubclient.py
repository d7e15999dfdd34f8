"""HTTP calls of the subscriber SDK to the hub's api role (keys and view schemas)."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from typing import Any

import orjson

from connectors.sdk.errors import KeyFetchError, SubscriptionRevoked, WrongKey
from hub.crypto.errors import CryptoError, KeyReleaseError
from hub.crypto.keyrelease import KemSuite, open_key_for_recipient
from hub.registry.schemas import AvroCodec


class HubClient:
    def __init__(self, api_url: str, token: str, timeout: float = 10.0) -> None:
        self._base = api_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._codecs: dict[int, AvroCodec] = {}

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self._base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = orjson.loads(exc.read())
                message = detail.get("error") or detail.get("message") or str(detail)
            except (orjson.JSONDecodeError, AttributeError):
                message = exc.reason
            if exc.code == 403 and path.startswith("/v1/keys"):
                raise SubscriptionRevoked(f"key release refused: {message}") from None
            raise KeyFetchError(f"{method} {path} failed with {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise KeyFetchError(f"{method} {path}: hub unreachable ({exc})") from None

    def release_key(
        self, recipient: str, subscription: str, key_id: bytes, private_key: bytes, kem: KemSuite
    ) -> bytes:
        """Ask for the data key ``key_id`` and open it with our private key."""
        answer = self._call(
            "POST", "/v1/keys/release", {"key_id": key_id.hex(), "subscription": subscription}
        )
        try:
            sealed = base64.b64decode(answer["sealed"])
            return open_key_for_recipient(sealed, private_key, kem, recipient, key_id)
        except KeyReleaseError as exc:
            raise WrongKey(
                f"the data key released for {recipient} cannot be opened with this private "
                f"key ({exc}); is it the key whose public half is registered for the party?"
            ) from None
        except (KeyError, ValueError, CryptoError) as exc:
            raise KeyFetchError(f"released key cannot be opened: {exc}") from None

    def codec(self, schema_id: int) -> AvroCodec:
        codec = self._codecs.get(schema_id)
        if codec is None:
            answer = self._call("GET", f"/registry/schemas/ids/{schema_id}")
            codec = self._codecs[schema_id] = AvroCodec(answer["schema"])
        return codec
