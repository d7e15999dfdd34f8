"""The Kafka Connect peers of ``govhub bench peers`` on a real broker: MirrorMaker 2 copies
the whole backlog, the SMT pipeline writes one masked, projected, filtered view."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from hub.bench.exchange import preload, provision
from hub.bench.peers import (
    MASKED,
    PROJECTED_OUT,
    measure_mirrormaker,
    measure_smt_view,
    provision_single,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java for Kafka Connect"),
]


def test_peers_copy_and_shape_the_backlog(kafka_bootstrap: str, tmp_path: Path) -> None:
    """MirrorMaker 2 copies the whole backlog; the SMT pipeline writes one district's
    records, projected and masked."""
    single = provision_single(kafka_bootstrap, tmp_path, 500)
    preload(single, 5000)
    mirrored = measure_mirrormaker(single, tmp_path, None, time_box=45)
    assert mirrored["complete"]
    assert mirrored["records_per_s"] > 0

    inst = provision(kafka_bootstrap, tmp_path, {}, 500)
    inst.records = 3000  # the JSON copy is what the Connect worker reads
    result = measure_smt_view(inst, tmp_path, None, time_box=45)
    assert result["complete"]
    assert result["written"] == round(3000 * result["view_share"])
    # FileStreamSink writes the transformed value's toString(): a map of the kept fields.
    line = result["sample_output"]
    assert "region_code=110101" in line
    for field in PROJECTED_OUT:
        assert f"{field}=" not in line
    for field in MASKED:
        assert f"{field}=***" in line
    assert orjson.dumps(result)
