"""deploy/k8s: every overlay built by kustomize (kubectl), core resources validated
strictly against the Kubernetes 1.31 schemas (kubernetes-validate, offline), custom
resources against Strimzi's and the Prometheus operator's API models (offline once the
models are cached)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.ops.crdcheck import check_custom_resources
from tests.ops.tools import DEPLOY, require_tool

OVERLAYS = ("dev", "production")
KUBERNETES = "1.31.0"
CUSTOM = {"kafka.strimzi.io/v1beta2", "monitoring.coreos.com/v1"}


def build(overlay: str) -> str:
    result = subprocess.run(
        [require_tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("k8s")
    paths = {}
    for overlay in OVERLAYS:
        paths[overlay] = folder / f"{overlay}.yaml"
        paths[overlay].write_text(build(overlay))
    return paths


def objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def core_errors(document: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc)]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no Kubernetes {KUBERNETES} schema for {document['apiVersion']}"]
    return []


def test_core_resources_match_the_kubernetes_schemas(rendered: dict[str, Path]) -> None:
    for overlay, path in rendered.items():
        for document in objects(path):
            if document["apiVersion"] in CUSTOM:
                continue
            assert core_errors(document) == [], (overlay, document["kind"])


def test_custom_resources_match_the_operators_api_models(rendered: dict[str, Path]) -> None:
    code, lines = check_custom_resources(*rendered.values())
    assert code == 0, lines
    custom = [d for p in rendered.values() for d in objects(p) if d["apiVersion"] in CUSTOM]
    assert len(lines) == len(custom) and all(line.startswith("ok ") for line in lines)


def test_both_validators_reject_mistakes(rendered: dict[str, Path], tmp_path: Path) -> None:
    documents = objects(rendered["dev"])
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    assert core_errors(deployment)
    pool = next(d for d in documents if d["kind"] == "KafkaNodePool")
    pool["spec"]["roles"] = ["broker", "controler"]
    monitor = next(d for d in documents if d["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = monitor["spec"]["endpoints"][0].pop("interval")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(documents))
    code, lines = check_custom_resources(broken)
    assert code == 1
    errors = [line for line in lines if line.startswith("error ")]
    assert any("KafkaNodePool" in e and "controler" in e for e in errors), lines
    assert any("ServiceMonitor" in e and "intervall" in e for e in errors), lines


def test_the_site_has_what_the_issue_asks_for(rendered: dict[str, Path]) -> None:
    documents = objects(rendered["production"])
    kinds: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], []).append(document)
    names = {k: {d["metadata"]["name"] for d in v} for k, v in kinds.items()}
    roles = {"govhub-api", "govhub-router", "govhub-gateway"}
    assert roles <= names["Deployment"] and roles <= names["Service"]
    assert roles == names["PodDisruptionBudget"]
    assert names["HorizontalPodAutoscaler"] == {"govhub-router", "govhub-gateway"}
    assert {"govhub-kek", "govhub-tokens"} <= names["Secret"]
    assert len(kinds["NetworkPolicy"]) >= 2
    assert kinds["ServiceMonitor"] and kinds["PodMonitor"]
    (kafka,) = kinds["Kafka"]
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    (pool,) = kinds["KafkaNodePool"]
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"broker", "controller"}
    assert all(
        d["metadata"]["namespace"] == "govhub" for d in documents if d["kind"] != "Namespace"
    )
    router = next(d for d in kinds["Deployment"] if d["metadata"]["name"] == "govhub-router")
    env = {e["name"]: e for e in router["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GOVHUB_ROUTER_TRANSACTIONAL_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    for deployment in kinds["Deployment"]:
        if deployment["metadata"]["name"] in roles:
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    metrics = next(d for d in kinds["ConfigMap"] if d["metadata"]["name"] == "kafka-metrics")
    assert "kafka_server_replicamanager_$1" in metrics["data"]["kafka-metrics-config.yml"]
