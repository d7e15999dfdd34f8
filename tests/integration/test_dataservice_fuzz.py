"""schemathesis against the data service's ``/openapi.json``: whatever a subscriber sends,
the service answers 2xx or 4xx (or 503 while loading) — never a 500 (bounded examples per
operation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from hub.catalogue.model import ShareMethod  # noqa: E402
from hub.demo.world import generate_records  # noqa: E402
from hub.subscriptions.model import Subscription  # noqa: E402
from tests.integration.hubworld import hub_world  # noqa: E402

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    keys: tuple[str, ...]

    def anchor(self, case: Any, choice: int) -> Any:
        """Point most cases at the served resource and at keys that exist."""
        if choice % 3 == 2:
            return case
        params = case.path_parameters or {}
        if "resource" in params:
            params["resource"] = "dibao"
        if "key" in params:
            params["key"] = self.keys[choice % len(self.keys)]
        if isinstance(case.body, dict) and "key" in case.body:
            case.body["key"] = self.keys[choice % len(self.keys)]
        return case


@pytest.fixture(scope="module")
def target(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("dsfuzz")
    with hub_world(
        kafka_bootstrap,
        tmp,
        roles=("data-service",),
        **{"data_service.port": 0, "data_service.indexes": {"dibao": ["category"]}},
    ) as world:
        world.runtime.state.put_subscription(
            Subscription(
                id="ds-fuzz",
                resource="dibao",
                subscriber="rsj",
                jurisdiction="110105000000",
                purpose="fuzz",
                delivery=ShareMethod.SERVICE,
            )
        )
        rows = generate_records(20, seed=5, invalid=0)
        world.publish(rows)
        world.runtime.wait_ready()
        yield Target(
            world.runtime.data_service_url,
            world.members["rsj"].token,
            tuple(r["id_card"] for r in rows[:5]),
        )


def _fuzz(operation: Any, mode: GenerationMode, target: Target) -> list[str]:
    failures: list[str] = []
    cases = st.tuples(operation.as_strategy(generation_mode=mode), st.integers(0, 8))

    @given(anchored=cases.map(lambda pair: target.anchor(*pair)))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(anchored: Any) -> None:
        try:
            anchored.call_and_validate(
                base_url=target.url,
                headers={"Authorization": f"Bearer {target.token}"},
                checks=[not_a_server_error],
                timeout=30,
            )
        except AssertionError as exc:
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")

    with contextlib.suppress(Unsatisfiable):
        run()
    return failures


def test_no_server_errors(target: Target) -> None:
    schema = schemathesis.openapi.from_url(target.url + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, target)
    assert operations >= 6
    assert not failures, "\n".join(dict.fromkeys(failures))
