from pathlib import Path

import pytest

from connectors.registry import ConnectorRegistry, UnknownConnector, default_registry
from connectors.sources.file import JsonlFileConfig, JsonlFileSource
from connectors.spec import load_spec
from hub.config import ConfigError

GOOD = """
[connector]
name = "mzj-dibao"
type = "jsonl-file"
resource = "dibao"

[kafka]
bootstrap_servers = "127.0.0.1:9092"

[source]
path = "/data/${DROP_FILE}"
"""


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_toml_and_env_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROP_FILE", "dibao.jsonl")
    spec = load_spec(write(tmp_path, GOOD), default_registry())
    assert spec.name == "mzj-dibao" and spec.type.kind == "source"
    assert isinstance(spec.settings, JsonlFileConfig)
    assert spec.settings.path == Path("/data/dibao.jsonl")
    source = spec.type.factory(spec.name, spec.settings)
    assert isinstance(source, JsonlFileSource)


def test_yaml_is_accepted(tmp_path: Path) -> None:
    text = """
connector: {name: a, type: jsonl-file, resource: dibao}
kafka: {bootstrap_servers: "h:1"}
source: {path: /x.jsonl}
"""
    spec = load_spec(write(tmp_path, text, "c.yaml"), default_registry())
    assert spec.file.kafka.bootstrap_servers == "h:1"


def test_errors_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DROP_FILE", raising=False)
    with pytest.raises(ConfigError, match="DROP_FILE"):
        load_spec(write(tmp_path, GOOD), default_registry())
    monkeypatch.setenv("DROP_FILE", "x")
    with pytest.raises(ConfigError, match=r"source\.pth: Extra inputs"):
        load_spec(write(tmp_path, GOOD.replace("path =", "pth =")), default_registry())
    with pytest.raises(ConfigError, match=r"connector\.type.*unknown connector type 'ftp'"):
        load_spec(write(tmp_path, GOOD.replace('"jsonl-file"', '"ftp"')), default_registry())
    with pytest.raises(ConfigError, match=r"connector\.batch_size"):
        load_spec(
            write(
                tmp_path, GOOD.replace('resource = "dibao"', 'resource = "dibao"\nbatch_size = 0')
            ),
            default_registry(),
        )
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("GOVHUB_BOOTSTRAP_SERVERS", raising=False)
    no_kafka = GOOD.replace('[kafka]\nbootstrap_servers = "127.0.0.1:9092"\n', "")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers"):
        load_spec(write(tmp_path, no_kafka), default_registry())
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "missing.toml", default_registry())


def test_empty_registry_and_duplicates() -> None:
    registry = ConnectorRegistry()
    with pytest.raises(UnknownConnector, match="known: none"):
        registry.get("jsonl-file")
    registry.register("x", "source", JsonlFileConfig, JsonlFileSource.from_config)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", "source", JsonlFileConfig, JsonlFileSource.from_config)
