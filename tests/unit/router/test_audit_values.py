"""Delivery audit records stay under the broker's message limit whatever frames hold."""

from __future__ import annotations

import orjson

from hub.router.engine import AUDIT_FIELDS
from hub.router.service import audit_values


def row(i: int, ids: int) -> list[object]:
    record_ids = [f"mzj-dibao:line:{i}:{n}" for n in range(ids)]
    return [
        f"community-{i}",
        "sub",
        "dibao",
        0,
        i,
        ids,
        "k" * 32,
        "t" * 32,
        [[0, ids]],
        "sha256",
        "d" * 64,
        record_ids,
        [7],
    ][: len(AUDIT_FIELDS)]


def test_frames_are_split_by_bytes_and_none_is_lost() -> None:
    rows = [row(i, 400) for i in range(300)]  # ~10 KB each, ~3 MB in all
    values = audit_values("router-0", 123, rows, limit=256 * 1024)
    assert len(values) > 10
    frames = []
    ids = set()
    for value in values:
        assert len(value) <= 256 * 1024 + 1024
        doc = orjson.loads(value)
        assert doc["kind"] == "delivery" and doc["router"] == "router-0" and doc["at_ms"] == 123
        assert doc["fields"] == list(AUDIT_FIELDS)
        ids.add(doc["id"])
        frames.extend(doc["frames"])
    assert frames == orjson.loads(orjson.dumps(rows))
    assert len(ids) == len(values)  # every record is an event of its own


def test_a_row_larger_than_the_limit_goes_alone_and_small_rows_share() -> None:
    values = audit_values("r", 1, [row(0, 5), row(1, 5000), row(2, 5)], limit=4096)
    assert [len(orjson.loads(v)["frames"]) for v in values] == [1, 1, 1]
    values = audit_values("r", 1, [row(i, 1) for i in range(50)])
    assert len(values) == 1 and len(orjson.loads(values[0])["frames"]) == 50
    assert audit_values("r", 1, []) == []
