"""``govhub subscribe`` files: one way in, Kafka client settings only for direct reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.subscribe import load_subscribe_file
from hub.config import ConfigError

BASE = """
[subscriber]
recipient = "jianwai-yonganli"
token = "${GOVHUB_TEST_TOKEN}"
private_key_file = "/etc/govhub/k.key"
api_url = "http://hub.example:8480"
sink = "jsonl-sink"
name = "jianwai"
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "subscribe.toml"
    path.write_text(BASE + extra + '\n[sink]\npath = "out.jsonl"\n', encoding="utf-8")
    return path


def test_direct_kafka_reads_take_security_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVHUB_TEST_TOKEN", "tok")
    monkeypatch.setenv("GOVHUB_TEST_KAFKA_PASSWORD", "s3cret")
    path = write(
        tmp_path,
        'bootstrap_servers = "kafka:9092"\n'
        'kafka_client_config = {"security.protocol" = "SASL_PLAINTEXT", '
        '"sasl.mechanism" = "SCRAM-SHA-512", "sasl.username" = "jianwai", '
        '"sasl.password" = "${GOVHUB_TEST_KAFKA_PASSWORD}"}',
    )
    section = load_subscribe_file(path).subscriber
    assert section.kafka_client_config["sasl.password"] == "s3cret"
    assert section.token.get_secret_value() == "tok"


def test_kafka_settings_without_direct_reads_and_two_ways_in_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVHUB_TEST_TOKEN", "tok")
    gateway = 'gateway_urls = ["http://gw:8490"]\n'
    with pytest.raises(ConfigError, match="kafka_client_config is for bootstrap_servers"):
        load_subscribe_file(
            write(tmp_path, gateway + 'kafka_client_config = {"security.protocol" = "SSL"}')
        )
    with pytest.raises(ConfigError, match="not both"):
        load_subscribe_file(write(tmp_path, gateway + 'bootstrap_servers = "kafka:9092"'))
