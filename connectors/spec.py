"""Connector configuration files (TOML or YAML), validated at start.

::

    [connector]
    name = "mzj-dibao-file"      # identity: checkpoints and metrics are keyed by it
    type = "jsonl-file"          # a registered connector type (govhub connector list)
    resource = "dibao"           # catalogue code of the resource it publishes

    [kafka]                      # optional: else KAFKA_BOOTSTRAP_SERVERS / GOVHUB_* env
    bootstrap_servers = "127.0.0.1:9092"

    [source]                     # the type's own settings, checked by its config model
    path = "/data/dibao.jsonl"

    [metrics]                    # optional: serve /metrics for Prometheus on this port
    port = 9482                  # (0: any free port; without the section: no /metrics)
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.registry import ConnectorRegistry, ConnectorType, UnknownConnector
from hub.config import ConfigError, KafkaConfig, MetricsConfig, format_validation_error


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConnectorSection(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    type: str
    resource: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    stop_when_idle: bool = Field(default=False, description="exit once the source is drained")
    confirm_timeout_s: float = Field(
        default=60.0,
        ge=1,
        le=600,
        description="how long a batch, then its checkpoint, may wait for Kafka's "
        "acknowledgement; then the connector resumes from its last checkpoint",
    )


class ConnectorMetrics(MetricsConfig):
    """Where ``govhub connector run`` serves ``/metrics`` (the ``govhub-connectors`` job)."""

    port: int | None = Field(default=9482, ge=0, le=65535, description="0: any free port")


class ConnectorFile(_Frozen):
    connector: ConnectorSection
    kafka: KafkaConfig
    metrics: ConnectorMetrics | None = None
    source: dict[str, Any] = Field(default_factory=dict)
    sink: dict[str, Any] = Field(default_factory=dict)


class ConnectorSpec:
    """A validated connector file: its sections and its type's typed settings."""

    def __init__(self, file: ConnectorFile, ctype: ConnectorType, settings: BaseModel) -> None:
        self.file = file
        self.type = ctype
        self.settings = settings

    @property
    def name(self) -> str:
        return self.file.connector.name


_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def _expand_env(value: Any) -> Any:
    """``${VAR}`` in string values is replaced from the environment (secrets stay out)."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"environment variable {name} (used in the config) is not set")
            return os.environ[name]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"connector config {path} does not exist") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return doc


def load_spec(path: Path, registry: ConnectorRegistry) -> ConnectorSpec:
    doc = _expand_env(_read(path))
    kafka = dict(doc.get("kafka") or {})
    env_boot = os.environ.get("GOVHUB_BOOTSTRAP_SERVERS") or os.environ.get(
        "KAFKA_BOOTSTRAP_SERVERS"
    )
    if "bootstrap_servers" not in kafka and env_boot:
        kafka["bootstrap_servers"] = env_boot
    if "topic_prefix" not in kafka and os.environ.get("GOVHUB_TOPIC_PREFIX"):
        kafka["topic_prefix"] = os.environ["GOVHUB_TOPIC_PREFIX"]
    doc["kafka"] = kafka
    try:
        file = ConnectorFile.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    try:
        ctype = registry.get(file.connector.type)
    except UnknownConnector as exc:
        raise ConfigError(f"{path}: connector.type: {exc}") from None
    section = file.source if ctype.kind == "source" else file.sink
    try:
        settings = ctype.config_model.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path), f"{ctype.kind}.")) from None
    return ConnectorSpec(file, ctype, settings)
