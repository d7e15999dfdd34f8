"""The Kafka subscriber SDK while the api (key release) is away: it waits and goes on."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from connectors.sdk.client import SubscriberClient, SubscriberSettings
from connectors.sinks.jsonl import JsonlSink
from hub.demo.world import generate_records
from tests.integration.hubworld import HubWorld, hub_world
from tests.ops.tools import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubWorld]:
    with hub_world(kafka_bootstrap, tmp_path) as w:
        yield w


class Relay:
    """A TCP relay from ``port`` to ``target``, started when the test says so: the api
    'comes back' at an address that refused connections until then."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


def test_the_kafka_subscriber_waits_for_key_release(world: HubWorld, tmp_path: Path) -> None:
    world.publish(generate_records(40, invalid=0))
    member = world.members["rsj"]
    port = free_port()
    client = SubscriberClient(
        SubscriberSettings(
            bootstrap_servers=world.bootstrap,
            recipient="rsj",
            api_url=f"http://127.0.0.1:{port}",
            token=member.token,
            private_key=member.private_key,
            topic_prefix=world.config.kafka.topic_prefix,
        ),
        JsonlSink(tmp_path / "rsj.jsonl"),
    )
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            client.run(stop)
        except BaseException as exc:  # the finding: the client gave up
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # Longer than the SDK's own retries of one key fetch (about 3 s): nothing is written,
    # and the client is still there.
    time.sleep(6.0)
    assert not failed and thread.is_alive() and client.records == 0
    api = urlsplit(world.runtime.api_url)
    relay = Relay(port, (api.hostname or "127.0.0.1", api.port or 0))
    try:
        deadline = time.monotonic() + 60
        while client.records < 40:
            assert not failed, failed
            assert time.monotonic() < deadline, f"only {client.records} records"
            time.sleep(0.2)
        time.sleep(1.0)  # a duplicate would show now
        stop.set()
        thread.join(15)
    finally:
        stop.set()
        relay.close()
    assert client.records == 40 and not failed
