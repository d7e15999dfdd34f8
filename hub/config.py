"""Typed configuration for every role.

One frozen model per component (``extra="forbid"``): a wrong key or value fails at start
with a message that names the field. Values come from an optional TOML file and
``GOVHUB_*`` environment variables (the environment wins); ``KAFKA_BOOTSTRAP_SERVERS`` is
honoured as the standard name for the broker list.
"""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.dataservice.config import DataServiceConfig


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the field and the fix."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")


class KafkaConfig(_Frozen):
    bootstrap_servers: str = Field(min_length=1, description="host:port[,host:port...]")
    topic_prefix: str = Field(default="", description="prepended to every GovHub topic name")
    delivery_partitions: int = Field(default=6, ge=1, le=10_000)
    replication_factor: int = Field(default=-1, description="-1: the broker's default")
    client_config: dict[str, str] = Field(
        default_factory=dict, description="extra librdkafka settings (security etc.)"
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_chars(cls, v: str) -> str:
        if not _TOPIC_PREFIX.match(v):
            raise ValueError("may contain only letters, digits, '.', '_' and '-'")
        return v

    @field_validator("client_config")
    @classmethod
    def _sasl_complete(cls, v: dict[str, str]) -> dict[str, str]:
        # A SASL client missing its user or password would only fail later, in librdkafka.
        if v.get("security.protocol", "").upper().startswith("SASL_"):
            missing = [
                k for k in ("sasl.mechanism", "sasl.username", "sasl.password") if not v.get(k)
            ]
            if missing:
                raise ValueError(
                    f"security.protocol {v['security.protocol']} needs {missing} too "
                    "(GOVHUB_KAFKA_SASL_MECHANISM, _USERNAME, _PASSWORD)"
                )
        return v


class TlsServerConfig(_Frozen):
    """TLS for an HTTP role (api, gateway): a certificate and key, and optionally the CA of
    client certificates (mTLS identities, ``parties`` ``certificate_subject``)."""

    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = Field(
        default=None, description="CA of client certificates (mTLS, optional per party)"
    )

    @model_validator(mode="after")
    def _tls_pairs(self) -> TlsServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        return self

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert_file is not None else "http"

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context, or ``None`` without TLS; unusable files are a
        :class:`ConfigError` naming them."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
            if self.tls_client_ca_file is not None:
                context.load_verify_locations(self.tls_client_ca_file)
                context.verify_mode = ssl.CERT_OPTIONAL  # a token still works without one
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"TLS files {self.tls_cert_file}, {self.tls_key_file} cannot be used: {exc}"
            ) from None
        return context


class ApiConfig(TlsServerConfig):
    host: str = "127.0.0.1"
    port: int = Field(default=8480, ge=0, le=65535)


class RouterConfig(_Frozen):
    transactional_id: str = Field(default="govhub-router-0", min_length=1)
    group_id: str = Field(default="govhub-router", min_length=1)
    consume_batch: int = Field(default=2000, ge=1, le=100_000)
    session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,
        le=300_000,
        description="how soon the group reassigns a dead router's partitions",
    )
    max_transaction_records: int = Field(
        default=50_000, ge=1, le=1_000_000, description="source records per transaction at most"
    )
    max_transaction_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="source bytes per transaction at most (large records: shorter commits)",
    )
    transaction_interval_ms: int = Field(default=200, ge=10, le=60_000)
    batch_linger_ms: int = Field(
        default=50,
        ge=0,
        le=60_000,
        description="a caught-up batch commits once it is this old (fewer, larger frames "
        "under a steady load; at most transaction_interval_ms)",
    )
    max_frame_entries: int = Field(default=500, ge=1, le=100_000)
    max_frame_bytes: int = Field(default=512_000, ge=1024, le=900_000)
    key_lifetime_s: int = Field(default=86_400, ge=60)
    suite: Literal["AES-256-GCM", "SM4-GCM"] = "AES-256-GCM"
    exactly_once: bool = Field(
        default=True,
        description="Kafka transactions (false: at-least-once, offsets committed after the "
        "frames are acknowledged; a crash may deliver a frame twice)",
    )


# The gateway's tier labels (hub.gateway.access) of streets/townships and communities/villages.
GRASSROOTS_TIERS = frozenset({"township", "village"})


class GatewayConfig(TlsServerConfig):
    """The ``gateway`` role: streams delivery frames to subscribers over HTTP."""

    host: str = "127.0.0.1"
    port: int = Field(default=8490, ge=0, le=65535, description="0: any free port")
    advertised_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/.*)?$",
        description="URL other gateways redirect this instance's subscribers to "
        "(default: http(s)://host:port as bound)",
    )
    group_id: str = Field(
        default="govhub-gateway", min_length=1, description="consumer group sharing partitions"
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,
        le=300_000,
        description="how soon the group reassigns a dead gateway's partitions",
    )
    max_subscribers: int = Field(default=20_000, ge=1, le=1_000_000)
    client_buffer_bytes: int = Field(
        default=1_048_576,
        ge=65_536,
        le=268_435_456,
        description="frame bytes queued for one subscriber before it is disconnected "
        "(or, when paced by its rate limit, sent back to catch-up)",
    )
    upper_tier_buffer_bytes: int = Field(
        default=16_777_216,
        ge=65_536,
        le=1_073_741_824,
        description="the same bound for streams of departments and of county-level and "
        "higher units: whole resources or districts, far more frames than a street's or a "
        "community's, and few of them",
    )
    socket_send_buffer_bytes: int = Field(
        default=262_144,
        ge=0,
        le=67_108_864,
        description="kernel send buffer per stream connection (0: the system's autotuning, "
        "which grows to megabytes per slow connection)",
    )
    catchup_batch: int = Field(default=2000, ge=1, le=100_000)
    catchup_fetch_bytes: int = Field(
        default=8_388_608, ge=65_536, le=268_435_456, description="fetch buffer of a catch-up read"
    )
    live_fetch_wait_ms: int = Field(
        default=10, ge=1, le=500, description="broker wait for new frames (latency vs. requests)"
    )
    heartbeat_s: float = Field(default=15.0, gt=0, le=300, description="keep-alive interval")
    position_interval_s: float = Field(
        default=30.0, gt=0, le=3600, description="how often an idle subscriber's cursor advances"
    )
    poll_wait_max_s: float = Field(default=30.0, gt=0, le=300, description="long-poll wait cap")
    poll_linger_s: float = Field(
        default=30.0, gt=0, le=600, description="a long-poll session is kept between polls"
    )
    borrow_idle_s: float = Field(
        default=30.0, gt=0, le=3600, description="unowned partitions stop being read when unused"
    )
    directory_heartbeat_s: float = Field(default=2.0, gt=0, le=60)
    redirect: bool = Field(default=True, description="send subscribers to their partition's owner")
    ticket_ttl_s: int = Field(default=3600, ge=60, le=86_400, description="resume ticket lifetime")
    auth_threads: int = Field(default=2, ge=1, le=64, description="threads for token hashing")
    gc_collect_interval_s: float = Field(
        default=600.0,
        ge=10,
        le=86_400,
        description="full garbage collection of the frozen heap (one pause, ~1 s at 10k streams)",
    )

    def buffer_bytes(self, tier: str) -> int:
        """The buffer bound of a stream of ``tier`` (the gateway's tier label)."""
        if tier in GRASSROOTS_TIERS:
            return self.client_buffer_bytes
        return self.upper_tier_buffer_bytes


class CryptoConfig(_Frozen):
    kek_file: Path = Field(description="local KEK file (32 bytes, mode 0600)")
    retired_kek_files: tuple[Path, ...] = Field(
        default=(),
        description="earlier KEKs, kept only to unwrap keys wrapped before a rotation "
        "(GOVHUB_RETIRED_KEK_FILES: comma-separated)",
    )

    @field_validator("retired_kek_files", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _retired_exist(self) -> CryptoConfig:
        for path in self.retired_kek_files:
            if not path.is_file():
                raise ValueError(f"retired KEK file {path} does not exist")
        return self


class MetricsConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int | None = Field(
        default=9481,
        ge=0,
        le=65535,
        description="/metrics port for processes without the api role (0: any free port)",
    )


class HubConfig(_Frozen):
    kafka: KafkaConfig
    api: ApiConfig = ApiConfig()
    router: RouterConfig = RouterConfig()
    gateway: GatewayConfig = GatewayConfig()
    data_service: DataServiceConfig = DataServiceConfig()
    crypto: CryptoConfig
    metrics: MetricsConfig = MetricsConfig()
    state_dir: Path = Path(".govhub")


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


_ENV_KEYS = {
    "GOVHUB_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "GOVHUB_TOPIC_PREFIX": "kafka.topic_prefix",
    "GOVHUB_API_PORT": "api.port",
    "GOVHUB_KEK_FILE": "crypto.kek_file",
    "GOVHUB_RETIRED_KEK_FILES": "crypto.retired_kek_files",
    "GOVHUB_STATE_DIR": "state_dir",
    "GOVHUB_METRICS_PORT": "metrics.port",
    "GOVHUB_ROUTER_TRANSACTIONAL_ID": "router.transactional_id",
    "GOVHUB_ROUTER_GROUP_ID": "router.group_id",
    "GOVHUB_GATEWAY_PORT": "gateway.port",
    "GOVHUB_GATEWAY_ADVERTISED_URL": "gateway.advertised_url",
    "GOVHUB_GATEWAY_GROUP_ID": "gateway.group_id",
    "GOVHUB_DATA_SERVICE_PORT": "data_service.port",
}


# librdkafka security settings of kafka.client_config from the environment (a role's
# Kafka principal, e.g. from a Kubernetes secret); keys hold dots, so they are not dotted paths.
_CLIENT_ENV_KEYS = {
    "GOVHUB_KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "GOVHUB_KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "GOVHUB_KAFKA_SASL_USERNAME": "sasl.username",
    "GOVHUB_KAFKA_SASL_PASSWORD": "sasl.password",
    "GOVHUB_KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
}


def format_validation_error(exc: ValidationError, source: str, prefix: str = "") -> str:
    """One line naming every bad field (``prefix`` names the section the model reads)."""
    problems = []
    for err in exc.errors():
        field = prefix + (".".join(str(p) for p in err["loc"]) or "(root)")
        problems.append(f"{field}: {err['msg']}")
    return f"invalid configuration ({source}): " + "; ".join(problems)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> HubConfig:
    """Build the hub configuration from a TOML file, the environment and overrides."""
    env = os.environ if env is None else env
    tree: dict[str, Any] = {}
    source = "defaults and environment"
    if path is not None:
        try:
            tree = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        source = str(path)
    # KAFKA_BOOTSTRAP_SERVERS first so GOVHUB_BOOTSTRAP_SERVERS can override it.
    for name in sorted(_ENV_KEYS, key=lambda n: n != "KAFKA_BOOTSTRAP_SERVERS"):
        if env.get(name):
            _set(tree, _ENV_KEYS[name], env[name])
    for name, key in _CLIENT_ENV_KEYS.items():
        if env.get(name):
            tree.setdefault("kafka", {}).setdefault("client_config", {})[key] = env[name]
    for dotted, value in (overrides or {}).items():
        _set(tree, dotted, value)
    # Hubs sharing a cluster under different topic prefixes must not share a consumer
    # group or fence each other's transactions: the defaults carry the prefix.
    prefix = str(tree.get("kafka", {}).get("topic_prefix", ""))
    router = tree.setdefault("router", {})
    router.setdefault("group_id", f"{prefix}govhub-router")
    router.setdefault("transactional_id", f"{prefix}govhub-router-0")
    tree.setdefault("gateway", {}).setdefault("group_id", f"{prefix}govhub-gateway")
    state_dir = Path(tree.get("state_dir", ".govhub"))
    tree.setdefault("crypto", {}).setdefault("kek_file", str(state_dir / "kek.key"))
    if "kafka" not in tree or "bootstrap_servers" not in tree["kafka"]:
        raise ConfigError(
            "kafka.bootstrap_servers is not set: set KAFKA_BOOTSTRAP_SERVERS, "
            "[kafka] bootstrap_servers in the config file, or start a local broker with "
            "'govhub kafka up'"
        )
    try:
        return HubConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def isolated_config(
    bootstrap_servers: str, topic_prefix: str, state_dir: Path, **overrides: Any
) -> HubConfig:
    """A hub of its own on a shared cluster: its own topic prefix, router group and
    transactional id, state folder, and an api on a free port (tests, benchmarks)."""
    base: dict[str, Any] = {
        "kafka.bootstrap_servers": bootstrap_servers,
        "kafka.topic_prefix": topic_prefix,
        "api.port": 0,
        "state_dir": str(state_dir),
        "router.transactional_id": f"{topic_prefix}router",
        "router.group_id": f"{topic_prefix}router",
        "metrics.port": 0,
        "gateway.port": 0,
        "gateway.group_id": f"{topic_prefix}gateway",
    }
    base.update(overrides)
    return load_config(env={}, overrides=base)
