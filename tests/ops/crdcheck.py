"""Custom resources checked against their operators' API models (Strimzi, Prometheus
operator), with deploy/k8s/validate/CustomResourceCheck.java on the JVM.

The models come from Maven Central (``io.strimzi:api``, ``io.fabric8:openshift-model-
monitoring``), fetched once with Maven into ``$GOVHUB_CACHE_DIR/k8s-models/`` the way the
local Kafka's jars are; later runs are offline.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.jars import _copy_dependencies
from hub.localkafka.jvm import find_java
from hub.localkafka.paths import default_cache_dir
from hub.localkafka.state import locked
from tests.ops.tools import DEPLOY, require_tool

STRIMZI_API = ("io.strimzi", "api", "0.48.0")
MONITORING_MODEL = ("io.fabric8", "openshift-model-monitoring", "7.4.0")
YAML = ("com.fasterxml.jackson.dataformat", "jackson-dataformat-yaml", "2.18.3")
CHECKER = DEPLOY / "k8s" / "validate" / "CustomResourceCheck.java"


def model_jars() -> Path:
    home = (
        default_cache_dir()
        / "k8s-models"
        / f"strimzi-{STRIMZI_API[2]}-fabric8-{MONITORING_MODEL[2]}"
    )
    libs = home / "libs"
    marker = home / "complete"
    if marker.is_file():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with locked(home / ".lock"):
        if not marker.is_file():
            log = home / "mvn.log"
            log.write_text("", encoding="utf-8")
            libs.mkdir(exist_ok=True)
            try:
                _copy_dependencies(
                    require_tool("mvn"), [STRIMZI_API, MONITORING_MODEL, YAML], home, libs, log,
                    transitive=True,
                )  # fmt: skip
            except LocalKafkaError as exc:
                pytest.fail(f"cannot fetch the operators' API models: {exc}", pytrace=False)
            marker.write_text("ok\n", encoding="utf-8")
    return libs


def check_custom_resources(*manifests: Path) -> tuple[int, list[str]]:
    """Exit code and output lines of the checker over rendered manifests."""
    try:
        java = find_java()
    except LocalKafkaError as exc:
        pytest.fail(str(exc), pytrace=False)
    result = subprocess.run(
        [java, "-cp", f"{model_jars()}/*", str(CHECKER), *map(str, manifests)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode not in (0, 1):
        pytest.fail(f"checker failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.returncode, lines
