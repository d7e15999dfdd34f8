from pathlib import Path

import pytest

from hub.config import ConfigError, load_config


def test_environment_and_defaults() -> None:
    cfg = load_config(env={"KAFKA_BOOTSTRAP_SERVERS": "h:1", "GOVHUB_STATE_DIR": "/tmp/s"})
    assert cfg.kafka.bootstrap_servers == "h:1"
    assert cfg.crypto.kek_file == Path("/tmp/s/kek.key")
    assert cfg.router.suite == "AES-256-GCM"


def test_govhub_variable_wins_over_the_standard_one() -> None:
    cfg = load_config(env={"KAFKA_BOOTSTRAP_SERVERS": "a:1", "GOVHUB_BOOTSTRAP_SERVERS": "b:2"})
    assert cfg.kafka.bootstrap_servers == "b:2"


def test_missing_bootstrap_says_how_to_fix() -> None:
    with pytest.raises(ConfigError, match="govhub kafka up"):
        load_config(env={})


def test_unknown_and_invalid_fields_are_named(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[kafka]\nbootstrap_servers = "h:1"\ntopic_prefx = "x"\n')
    with pytest.raises(ConfigError, match=r"kafka\.topic_prefx: Extra inputs"):
        load_config(path, env={})
    path.write_text('[kafka]\nbootstrap_servers = "h:1"\n[router]\nsuite = "DES"\n')
    with pytest.raises(ConfigError, match=r"router\.suite"):
        load_config(path, env={})
    path.write_text('[kafka]\nbootstrap_servers = "h:1"\ntopic_prefix = "bad prefix"\n')
    with pytest.raises(ConfigError, match=r"kafka\.topic_prefix"):
        load_config(path, env={})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_retired_kek_files_from_the_environment(tmp_path: Path) -> None:
    old = tmp_path / "old.key"
    older = tmp_path / "older.key"
    for path in (old, older):
        path.write_bytes(b"k" * 32)
    config = load_config(
        env={
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
            "GOVHUB_RETIRED_KEK_FILES": f"{old}, {older}",
        }
    )
    assert config.crypto.retired_kek_files == (old, older)
    with pytest.raises(ConfigError, match="retired KEK file"):
        load_config(
            env={
                "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
                "GOVHUB_RETIRED_KEK_FILES": str(tmp_path / "nope"),
            }
        )
