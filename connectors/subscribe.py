"""``govhub subscribe CONFIG``: receive a subscriber's records into a sink, exactly once.

::

    [subscriber]
    recipient = "jianwai-yonganli"            # the party id
    token = "${GOVHUB_TOKEN}"                 # ${VAR} comes from the environment
    private_key_file = "/etc/govhub/jianwai-yonganli.key"   # as written by 'govhub party'
    kem = "x25519"                            # or mlkem768-x25519
    api_url = "http://hub.example:8480"       # key release and view schemas
    gateway_urls = ["http://gw1.example:8490", "http://gw2.example:8490"]
    protocol = "sse"                          # sse | ws | poll
    sink = "postgres-sink"                    # a registered sink type (govhub connector list)
    name = "jianwai-dibao-pg"                 # the sink's identity (its cursor row)
    # bootstrap_servers = "kafka:9092"        # instead of gateway_urls: read Kafka directly
    # kafka_client_config = {"security.protocol" = "SASL_SSL", "sasl.mechanism" =
    #   "SCRAM-SHA-512", "sasl.username" = "...", "sasl.password" = "${KAFKA_PASSWORD}"}

    [sink]                                    # the sink type's own settings
    dsn = "postgresql://govhub:${PG_PASSWORD}@127.0.0.1:5432/jianwai"
    table = "govhub.dibao"
    key = ["_record_id"]
    create_tables = true

The command runs until interrupted (SIGINT/SIGTERM), reconnecting and resuming on its
own; it exits with status 3 when the hub refuses the subscriber for good (revoked,
suspended, expired, wrong key) and prints why.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from connectors.registry import ConnectorRegistry, default_registry
from connectors.sdk.errors import SubscriberError
from connectors.sinks.base import Sink
from connectors.spec import _expand_env, _read
from hub.config import ConfigError, format_validation_error
from hub.crypto.keyrelease import KemSuite, load_private_key

log = logging.getLogger(__name__)

EXIT_REFUSED = 3
_KEY_LENGTHS = {KemSuite.X25519: 32, KemSuite.MLKEM768_X25519: 96}


class SubscriberSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    recipient: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    token: SecretStr
    private_key_file: Path
    kem: Literal["x25519", "mlkem768-x25519"] = "x25519"
    api_url: str = Field(pattern=r"^https?://")
    gateway_urls: tuple[str, ...] = ()
    protocol: Literal["sse", "ws", "poll"] = "sse"
    client: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    sink: str = Field(description="sink type, e.g. postgres-sink, jsonl-sink")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="the sink's identity")
    bootstrap_servers: str | None = None
    kafka_client_config: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka settings for reading Kafka directly (security.protocol, "
        "sasl.*, ssl.ca.location); ${VAR} keeps secrets out of the file",
    )
    topic_prefix: str = ""
    poll_wait_s: float = Field(default=20.0, gt=0, le=300)
    reconnect_max_s: float = Field(default=10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_way_in(self) -> SubscriberSection:
        if bool(self.gateway_urls) == bool(self.bootstrap_servers):
            raise ValueError(
                "set gateway_urls (over HTTP) or bootstrap_servers (Kafka directly), not both"
            )
        if self.kafka_client_config and not self.bootstrap_servers:
            raise ValueError("kafka_client_config is for bootstrap_servers (Kafka directly)")
        for url in self.gateway_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"gateway_urls: {url!r} is not an http(s) URL")
        return self


class SubscribeFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    subscriber: SubscriberSection
    sink: dict[str, Any] = Field(default_factory=dict)


def load_subscribe_file(path: Path) -> SubscribeFile:
    doc = _expand_env(_read(path))
    try:
        return SubscribeFile.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None


def read_private_key(path: Path, kem: KemSuite) -> bytes:
    """The raw private key from ``path`` (raw bytes as 'govhub party' writes, or base64)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"subscriber.private_key_file: cannot read {path}: {exc}") from None
    if len(raw) != _KEY_LENGTHS[kem]:
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.b64decode(raw.strip(), validate=True)
    try:
        load_private_key(raw, kem)
    except Exception as exc:
        raise ConfigError(
            f"subscriber.private_key_file: {path} does not hold a {kem.value} private key ({exc})"
        ) from None
    return raw


def build_sink(file: SubscribeFile, registry: ConnectorRegistry) -> Sink:
    section = file.subscriber
    ctype = registry.get(section.sink)
    if ctype.kind != "sink":
        raise ConfigError(f"subscriber.sink: {section.sink!r} is a source, not a sink")
    try:
        settings = ctype.config_model.model_validate(file.sink)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "[sink]", "sink.")) from None
    sink: Sink = ctype.factory(section.name, settings)
    return sink


def run_subscriber(file: SubscribeFile, sink: Sink, stop: threading.Event) -> None:
    """Run until ``stop`` is set; raises SubscriberError when refused for good."""
    section = file.subscriber
    kem = KemSuite(section.kem)
    private_key = read_private_key(section.private_key_file, kem)
    token = section.token.get_secret_value()
    if section.bootstrap_servers:
        from connectors.sdk.client import SubscriberClient, SubscriberSettings

        SubscriberClient(
            SubscriberSettings(
                bootstrap_servers=section.bootstrap_servers,
                recipient=section.recipient,
                api_url=section.api_url,
                token=token,
                private_key=private_key,
                kem=kem,
                topic_prefix=section.topic_prefix,
                client_config=section.kafka_client_config or None,
            ),
            sink,
        ).run(stop)
        return
    from connectors.sdk.gateway import GatewaySettings, GatewaySubscriber

    client = GatewaySubscriber(
        GatewaySettings(
            gateway_urls=section.gateway_urls,
            api_url=section.api_url,
            recipient=section.recipient,
            token=token,
            private_key=private_key,
            kem=kem,
            protocol=section.protocol,
            client=section.client,
            poll_wait_s=section.poll_wait_s,
            reconnect_max_s=section.reconnect_max_s,
        ),
        sink,
    )

    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=lambda: (stop.wait(), loop.call_soon_threadsafe(done.set)), daemon=True
        ).start()
        await client.run(done)

    asyncio.run(main())
    print(
        f"{section.recipient}: {client.records} records in {client.frames} frames, "
        f"{client.connects} connects",
        file=sys.stderr,
    )


def _subscribe(args: argparse.Namespace) -> int:
    file = load_subscribe_file(args.config)
    sink = build_sink(file, default_registry())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        run_subscriber(file, sink, stop)
    except SubscriberError as exc:
        print(f"govhub: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        sink.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "subscribe",
        help="receive a subscriber's records into a sink (gateway or Kafka), exactly once",
        description=__doc__.split("::")[0].strip() if __doc__ else None,
    )
    parser.add_argument("config", type=Path, help="subscriber TOML/YAML file")
    parser.set_defaults(func=_subscribe)
