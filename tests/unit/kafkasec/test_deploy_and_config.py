"""The plan as Strimzi KafkaUsers (and the k8s file made from it), the roles' Kafka
principal from the environment, and the ``govhub kafka acls`` command's offline parts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from hub.config import ConfigError, load_config
from hub.kafkasec import HubKafkaNames, acl_plan
from hub.kafkasec.commands import add_acls_action, read_properties, run_acls
from hub.kafkasec.strimzi import kafka_users

ROOT = Path(__file__).resolve().parents[3]
K8S_USERS = ROOT / "deploy" / "k8s" / "base" / "kafka-users.yaml"
BOOTSTRAP = {"KAFKA_BOOTSTRAP_SERVERS": "x:9092"}


def test_kafka_users_carry_every_entry_of_the_plan() -> None:
    names = HubKafkaNames.from_config(load_config(env=BOOTSTRAP))
    plan = acl_plan(names, ["mzj"])
    documents = kafka_users(plan, "govhub-kafka")
    assert [d["metadata"]["name"] for d in documents] == list(plan.users)
    for document in documents:
        user = document["metadata"]["name"]
        assert document["metadata"]["labels"] == {"strimzi.io/cluster": "govhub-kafka"}
        assert document["spec"]["authentication"] == {"type": "scram-sha-512"}
        rules = document["spec"]["authorization"]["acls"]
        count = sum(len(rule["operations"]) for rule in rules)
        assert count == len(plan.entries_of(user)), user
    conn = next(d for d in documents if d["metadata"]["name"] == "conn-mzj")
    source = next(
        r
        for r in conn["spec"]["authorization"]["acls"]
        if r["resource"].get("name") == "govhub.src.mzj."
    )
    assert source == {
        "resource": {"type": "topic", "name": "govhub.src.mzj.", "patternType": "prefix"},
        "operations": ["Write", "Describe"],
    }


def test_the_k8s_users_are_the_rendered_plan_of_the_k8s_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """deploy/k8s/base/kafka-users.yaml is `govhub kafka acls --strimzi` of the hub.toml
    the k8s roles run with: they cannot drift apart."""
    config_map = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "config.yaml").read_text())
    hub_toml = tmp_path / "hub.toml"
    hub_toml.write_text(config_map["data"]["hub.toml"], encoding="utf-8")
    parser = argparse.ArgumentParser(prog="govhub")
    add_acls_action(parser.add_subparsers(dest="kafka_command", required=True))
    args = parser.parse_args(["acls", "--strimzi", "--config", str(hub_toml)])
    assert run_acls(args) == 0
    rendered = capsys.readouterr().out
    assert rendered == K8S_USERS.read_text(encoding="utf-8")
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered)}
    assert kinds == {"KafkaUser"}


def test_a_roles_principal_comes_from_the_environment() -> None:
    env = {
        **BOOTSTRAP,
        "GOVHUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "GOVHUB_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "GOVHUB_KAFKA_SASL_USERNAME": "govhub-router",
        "GOVHUB_KAFKA_SASL_PASSWORD": "from-a-secret",
        "GOVHUB_KAFKA_SSL_CA_LOCATION": "/etc/kafka-ca/ca.crt",
    }
    config = load_config(env=env)
    assert config.kafka.client_config == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "govhub-router",
        "sasl.password": "from-a-secret",
        "ssl.ca.location": "/etc/kafka-ca/ca.crt",
    }


def test_a_sasl_client_without_its_password_fails_at_start() -> None:
    env = {
        **BOOTSTRAP,
        "GOVHUB_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "GOVHUB_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "GOVHUB_KAFKA_SASL_USERNAME": "govhub-api",
    }
    with pytest.raises(ConfigError, match=r"kafka\.client_config: .*'sasl\.password'"):
        load_config(env=env)


def test_properties_files_and_their_mistakes(tmp_path: Path) -> None:
    good = tmp_path / "admin.properties"
    good.write_text("# admin\nsecurity.protocol = SASL_PLAINTEXT\n\nsasl.password=a=b\n")
    assert read_properties(good) == {"security.protocol": "SASL_PLAINTEXT", "sasl.password": "a=b"}
    bad = tmp_path / "bad.properties"
    bad.write_text("security.protocol\n")
    with pytest.raises(ConfigError, match=r"bad\.properties:1: expected key=value"):
        read_properties(bad)
    with pytest.raises(ConfigError, match=r"missing\.properties"):
        read_properties(tmp_path / "missing.properties")


def test_strimzi_output_for_named_departments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="govhub")
    add_acls_action(parser.add_subparsers(dest="kafka_command", required=True))
    args = parser.parse_args(["acls", "--strimzi", "--departments", "mzj, rsj"])
    assert run_acls(args) == 0
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert names[-2:] == ["conn-mzj", "conn-rsj"]
    args = parser.parse_args(["acls", "--strimzi", "--departments", "Bad Name"])
    with pytest.raises(ConfigError, match="--departments"):
        run_acls(args)
