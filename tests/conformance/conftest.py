"""Parametrizes the conformance suite over every case in ``cases_*.py`` and provides its
worlds: one on the session broker per test, one on a private broker for restarts."""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.localkafka import LocalKafka, find_free_base_port
from tests.conformance.harness import ConnectorCase, World, connector_world


def discover_cases() -> list[ConnectorCase]:
    cases: list[ConnectorCase] = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        module = importlib.import_module(f"tests.conformance.{path.stem}")
        cases.extend(module.CASES)
    names = [c.name for c in cases]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"conformance case names must be unique: {sorted(duplicated)}")
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = discover_cases()
        metafunc.parametrize("case", cases, ids=[c.name for c in cases])


@pytest.fixture
def world(case: ConnectorCase, kafka_bootstrap: str, tmp_path: Path) -> Iterator[World]:
    for module in case.requires:
        pytest.importorskip(module)
    with connector_world(kafka_bootstrap, tmp_path) as w:
        yield w
        if case.cleanup is not None:
            case.cleanup(w.env)


@pytest.fixture(scope="module")
def private_kafka(kafka_bootstrap: str) -> Iterator[LocalKafka]:
    """A broker of this module's own, to stop and start under a running connector."""
    state = Path(tempfile.mkdtemp(prefix="govhub-conformance-kafka-"))
    broker = LocalKafka(state, base_port=find_free_base_port(1), heap_mb=384)
    try:
        broker.up(timeout=120)
        yield broker
    finally:
        broker.down()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def restart_world(
    case: ConnectorCase, private_kafka: LocalKafka, tmp_path: Path
) -> Iterator[World]:
    for module in case.requires:
        pytest.importorskip(module)
    with connector_world(private_kafka.bootstrap_servers, tmp_path) as w:
        yield w
        if case.cleanup is not None:
            case.cleanup(w.env)
