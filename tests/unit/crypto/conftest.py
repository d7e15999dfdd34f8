from __future__ import annotations

import pytest

from hub.crypto import PayloadSuite


@pytest.fixture(params=list(PayloadSuite), ids=lambda s: s.name)
def suite(request: pytest.FixtureRequest) -> PayloadSuite:
    value: PayloadSuite = request.param
    return value
