"""KEK rotation without a window: retired KEKs keep unwrapping, `govhub kek rewrap` moves
every key (data keys and the hub's own secrets) to the new KEK, and then a hub holding only
the new KEK releases keys for frames sealed before the rotation."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.sdk.client import SubscriberClient, SubscriberSettings
from connectors.sinks.jsonl import JsonlSink
from hub.cli import main as govhub
from hub.config import isolated_config
from hub.crypto.kms import LocalFileKms
from hub.crypto.secrets import HUB_SECRETS
from hub.demo.world import generate_records
from hub.runtime import HubRuntime
from tests.integration.hubworld import HubWorld, hub_world

pytestmark = pytest.mark.integration

RECIPIENT = "rsj"  # the district's department: every record


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


def new_kek(path: Path) -> Path:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(os.urandom(32))
    return path


def kek_command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = govhub(["kek", *argv])
    out = capsys.readouterr().out
    return code, json.loads(out)


def receive_all(world: HubWorld, api_url: str, expect: int, sink: str) -> SubscriberClient:
    member = world.members[RECIPIENT]
    settings = SubscriberSettings(
        bootstrap_servers=world.bootstrap,
        recipient=RECIPIENT,
        api_url=api_url,
        token=member.token,
        private_key=member.private_key,
        topic_prefix=world.config.kafka.topic_prefix,
    )
    client = SubscriberClient(settings, JsonlSink(world.tmp / "received" / f"{sink}.jsonl"))
    stop = threading.Event()
    thread = threading.Thread(target=client.run, args=(stop,), daemon=True)
    thread.start()
    waited = 0.0
    while client.records < expect and waited < 60 and thread.is_alive():
        stop.wait(0.1)
        waited += 0.1
    stop.set()
    thread.join(10)
    return client


def test_rotation_then_rewrap_leaves_nothing_under_the_old_kek(
    world: HubWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = generate_records(30, invalid=0)
    world.publish(rows)
    assert receive_all(world, world.runtime.api_url, 30, "before").records == 30
    old_kek = world.config.crypto.kek_file
    old_id = LocalFileKms(old_kek).kek_id

    # The rotation: a new KEK becomes current, the old one is kept as retired.
    kek2 = new_kek(tmp_path / "kek2.key")
    config = tmp_path / "rotated.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "rotated"}"\n'
        f"[kafka]\n"
        f'bootstrap_servers = "{world.bootstrap}"\n'
        f'topic_prefix = "{world.config.kafka.topic_prefix}"\n'
        f"[crypto]\n"
        f'kek_file = "{kek2}"\n'
        f'retired_kek_files = ["{old_kek}"]\n'
    )
    code, status = kek_command(capsys, "status", "--config", str(config))
    assert code == 0 and status["retired_keks"] == [old_id]
    before = status["keys_by_kek"]
    assert isinstance(before, dict) and set(before) == {old_id} and before[old_id] >= 2

    code, dry = kek_command(capsys, "rewrap", "--config", str(config), "--dry-run")
    assert code == 0 and dry["rewrapped"] == {old_id: before[old_id]}
    code, done = kek_command(capsys, "rewrap", "--config", str(config))
    assert code == 0, done
    assert done["rewrapped"] == {old_id: before[old_id]} and done["unreadable"] == []
    code, again = kek_command(capsys, "rewrap", "--config", str(config))
    assert code == 0 and again["rewrapped"] == {}  # idempotent

    # A hub that holds only the new KEK: every key unwraps, old frames open.
    only_new = isolated_config(
        world.bootstrap,
        world.config.kafka.topic_prefix,
        tmp_path / "new-hub",
        **{"crypto.kek_file": str(kek2)},
    )
    runtime = HubRuntime(only_new, ("api",))
    runtime.start()
    try:
        runtime.wait_ready()
        kms = LocalFileKms(kek2)
        rows_by_key = dict(runtime.state.keys.items())
        assert {str(r["kek_id"]) for r in rows_by_key.values()} == {kms.kek_id}
        for key in HUB_SECRETS.keys() & rows_by_key.keys():
            assert len(HUB_SECRETS[key].unwrap_row(rows_by_key[key], kms)) == 32
        after = receive_all(world, runtime.api_url, 30, "after-rewrap")
        assert after.records == 30
    finally:
        runtime.stop()


def test_a_missing_retired_kek_is_a_clear_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n'
        f'[crypto]\nkek_file = "{tmp_path / "k"}"\n'
        f'retired_kek_files = ["{tmp_path / "gone.key"}"]\n'
    )
    assert govhub(["kek", "status", "--config", str(config)]) == 2
    assert "retired KEK file" in capsys.readouterr().err
