"""Processes the exchange benchmark starts: the raw baseline loop and a router.

Each runs in its own process, so the one being measured has a core of its own and its CPU
time can be read from ``/proc``:

    python -m hub.bench.procs raw --bootstrap B --source T --out T2 --count N --group G
    python -m hub.bench.procs router --config FILE [--plaintext]

``raw`` prints one JSON line with its rate; ``router`` prints ``ready`` once it runs and
stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import orjson

from hub import kafka
from hub.crypto.frames import FrameSealer
from hub.crypto.suites import NONCE_LEN, TAG_LEN


class PlaintextSealer(FrameSealer):
    """Frames of the same size and layout, not encrypted: only for measuring what
    encryption costs. The nonce and tag are zeros, so no subscriber can open such a frame
    (the tag check fails)."""

    def seal_block(self, aad: bytes, plaintext: bytes, nonce: bytes | None = None) -> bytes:
        self.frames_sealed += 1
        return b"".join((aad, bytes(NONCE_LEN), plaintext, bytes(TAG_LEN)))


def raw_loop(
    bootstrap: str, source: str, out: str, count: int, group: str, forever: bool = False
) -> dict[str, float]:
    """Batched ``consume(n)`` → ``produce()`` of every record, nothing else: what
    librdkafka moves from Python on this machine. Timed from the first record consumed to
    the last one acknowledged."""
    # Without the short fetch backoff the loop drains its prefetch queue and then waits
    # out librdkafka's default second: a third of its speed (kafka.FETCH_QUEUE_BACKOFF_MS).
    consumer = kafka.consumer(
        bootstrap, group, "bench-raw", fetch_queue_backoff_ms=kafka.FETCH_QUEUE_BACKOFF_MS
    )
    producer = kafka.producer(bootstrap, "bench-raw", linger_ms=2, batch_size=1_000_000)
    consumer.subscribe([source])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    seen = 0
    started: float | None = None
    cpu0 = time.process_time()
    while (forever and not stop.is_set()) or (not forever and seen < count):
        batch = consumer.consume(2000, 0.01)
        for msg in batch:
            if msg.error() is not None:
                continue
            if started is None:
                started = time.perf_counter()
                cpu0 = time.process_time()
            while True:
                try:
                    producer.produce(out, value=msg.value(), key=msg.key(), headers=msg.headers())
                    break
                except BufferError:
                    producer.poll(0.05)
            seen += 1
        producer.poll(0)
    producer.flush(60)
    ended = time.perf_counter()
    consumer.close()
    elapsed = ended - (started or ended)
    return {
        "records": seen,
        "seconds": elapsed,
        "records_per_s": seen / elapsed if elapsed > 0 else 0.0,
        "cpu_seconds": time.process_time() - cpu0,
        "rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def run_router(config_path: Path, plaintext: bool, profile: Path | None = None) -> int:
    """The router on this process's main thread until SIGTERM; with ``profile``, under
    pyinstrument, its report written there at the end."""
    from hub.config import load_config
    from hub.router.service import RouterService
    from hub.runtime import HubRuntime

    config = load_config(config_path, env={})
    runtime = HubRuntime(config, roles=())
    runtime.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service = RouterService(
        config, runtime.state, runtime.kms, PlaintextSealer if plaintext else FrameSealer
    )

    def announce() -> None:
        while not service.ready and not stop.is_set():
            time.sleep(0.02)
        print("ready", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    try:
        service.run(stop)
    finally:
        if profiler is not None:
            profiler.stop()
            assert profile is not None
            profile.parent.mkdir(parents=True, exist_ok=True)
            profile.write_text(profiler.output_text(unicode=True, show_all=False))
        runtime.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.bench.procs")
    sub = parser.add_subparsers(dest="what", required=True)
    raw = sub.add_parser("raw")
    raw.add_argument("--bootstrap", required=True)
    raw.add_argument("--source", required=True)
    raw.add_argument("--out", required=True)
    raw.add_argument("--count", type=int, default=0)
    raw.add_argument("--group", required=True)
    raw.add_argument("--forever", action="store_true", help="until SIGTERM (latency runs)")
    router = sub.add_parser("router")
    router.add_argument("--config", type=Path, required=True)
    router.add_argument("--plaintext", action="store_true")
    router.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.what == "raw":
        result = raw_loop(
            args.bootstrap, args.source, args.out, args.count, args.group, args.forever
        )
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0
    return run_router(args.config, args.plaintext, args.profile)


if __name__ == "__main__":
    raise SystemExit(main())
