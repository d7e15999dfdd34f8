"""``govhub bench data-service``: key lookups and verifications against a plain handler.

One broker and three processes besides it, in one run: a plain aiohttp app whose handler
returns a constant JSON body (the baseline), the data service (``govhub serve --roles
data-service``, the real thing: token check, subscription grant, rate limit, RocksDB read,
Avro decode, the subscription's view, one audit event per call, produced to Kafka in
chunks) and the load generator ``wrk`` (C, so the client is not what is measured). Both
servers run on CPU 0, wrk on CPU 1. Every scenario uses the same client, connection count
and kind of request generation (a Lua ``request()`` per call), and each run records wrk's
own CPU use (``client_cpu_pct_rounds``): near 100 % would mean the client set the rate.

Figures:

* ``rebuild_s`` — from starting the data-service process on an empty store to its
  ``/readyz`` answering 200 with every source record materialised (process start included);
  ``settle_s`` — then until the process is idle (RocksDB compacting the new store in the
  background), before the calls are measured;
* ``requests_per_s`` per scenario (``plain``: the lookup's ``GET`` sent to the constant
  handler, ``plain_post``: the verification ``POST`` sent to the constant handler,
  ``lookup``: ``GET`` one record by a random key, ``verify``: ``POST`` a name claim for a
  random key, half of them wrong) with wrk's closed loop at full load; ``ratio_to_plain``
  against ``plain`` and, for ``verify``, ``ratio_to_plain_same_request`` against
  ``plain_post``;
* ``p99_ms_at_half_load`` — each of ``--paced-connections`` (16) connections paces its
  requests (wrk ``delay()``) so the offered load is at most half the measured full-load
  rate; wrk's latency distribution. (With 32 paced connections, requests arrive in bursts
  of up to 32 and the last of a burst waits for the others: a queueing figure of the client,
  the same for the plain handler.)

The scenarios run in interleaved rounds (``--rounds``, 3) and each figure keeps its best
round, with every round listed: on a shared machine other work only ever slows a round
down, so the best round is the closest to what the code does. Each round also records the
machine's CPU pressure (Linux PSI ``some avg10``: the share of time some task waited for a
CPU), which tells a slow round from a slow code path.

    govhub bench data-service [--quick] [--json FILE] [--records N] [--bootstrap HOST:PORT]

Needs ``wrk`` (``apt-get install wrk``) and ``taskset``.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub import kafka
from hub.bench import emit, run_arguments
from hub.bench.machine import machine
from hub.catalogue.model import ShareMethod
from hub.catalogue.samples import load_sample
from hub.config import isolated_config
from hub.demo.world import build_members, provision
from hub.localkafka import LocalKafka, find_free_base_port
from hub.registry.framing import frame
from hub.state import ControlState
from hub.subscriptions.model import Subscription
from hub.topics import ensure_hub_topics

SERVER_CPU, LOAD_CPU = 0, 1
COMMUNITIES = ("110105001001", "110105001002", "110105002001", "110105002002")
CALLER = "rsj"
GOALS = {"ratio_to_plain": 0.3, "p99_ms_at_half_load": 10.0, "rebuild_s": 60.0}

LOOKUP_LUA = """
math.randomseed(os.time())
request = function()
  local n = math.random(0, RECORDS - 1)
  return wrk.format("GET", string.format("/v1/data/dibao/records/110105%012d", n))
end
"""
VERIFY_LUA = """
math.randomseed(os.time() + 1)
-- wrk.format replaces wrk.headers (the Authorization) when given headers: copy them.
headers = {}
for k, v in pairs(wrk.headers) do headers[k] = v end
headers["Content-Type"] = "application/json"
request = function()
  local n = math.random(0, RECORDS - 1)
  local claim = n
  if math.random() < 0.5 then claim = n + 1 end
  local body = string.format('{"key":"110105%012d","fields":{"name":"N%d"}}', n, claim)
  return wrk.format("POST", "/v1/data/dibao/verify", headers, body)
end
"""
PACED_LUA = """
delay = function()
  return DELAY_MS
end
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_arguments(parser, "100,000 records, short runs")
    parser.add_argument("--records", type=int, default=None, help="stored records")
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument(
        "--paced-connections",
        type=int,
        default=16,
        help="connections of the half-load runs (fewer, each sending more often)",
    )
    parser.add_argument("--serve-plain", type=int, default=None, help=argparse.SUPPRESS)


def serve_plain(port: int) -> None:
    """The baseline: aiohttp answering every request with one constant JSON body."""
    from aiohttp import web

    body = b'{"resource":"dibao","found":true}'

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pinned(cpu: int) -> Callable[[], None] | None:
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _record(n: int) -> dict[str, Any]:
    return {
        "id_card": f"110105{n:012d}",
        "name": f"N{n}",
        "region_code": COMMUNITIES[n % len(COMMUNITIES)],
        "household_size": n % 6 + 1,
        "amount": decimal.Decimal(60_000 + n % 240_000) / 100,
        "approved_on": datetime.date(2026, 1, 1) + datetime.timedelta(days=n % 300),
        "category": "URBAN" if n % 3 else "RURAL",
        "address": f"北京市朝阳区某街道{n % 997}号",
    }


def _publish(bootstrap: str, topic: str, codec: Any, schema_id: int, count: int) -> float:
    """Produce ``count`` framed Avro records keyed by business key; returns seconds."""
    producer = kafka.producer(
        bootstrap,
        "bench-dataservice-source",
        linger_ms=50,
        batch_size=1_000_000,
        queue_buffering_max_messages=1_000_000,
        delivery_report_only_error=True,
    )
    started = time.perf_counter()
    now = str(int(time.time() * 1000)).encode()
    for n in range(count):
        row = _record(n)
        value = frame(schema_id, codec.encode(row))
        headers = [("govhub-region", row["region_code"].encode()), ("govhub-ingested-at", now)]
        while True:
            try:
                producer.produce(topic, value, row["id_card"].encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} source records not acknowledged")
    return time.perf_counter() - started


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready within {timeout:.0f} s")


def _wrk(
    url: str, duration: float, connections: int, token: str, script: str, tmp: Path
) -> dict[str, Any]:
    path = tmp / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    path.write_text(script)
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:.0f}s",
        "--timeout",
        "10s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        "-s",
        str(path),
        url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, preexec_fn=_pinned(LOAD_CPU)
    ).stdout
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return {
        "requests_per_s": round(rate),
        "errors": errors,
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "cpu_pressure": _cpu_pressure(),
        # wrk's own CPU time over the run: near 100 % the client, not the server, sets the
        # rate (wrk runs alone on its CPU, so this is the share of that CPU it used).
        "client_cpu_pct": round(100 * client_cpu / wall, 1) if wall > 0 else None,
    }


def _cpu_pressure() -> float | None:
    """Share of the last 10 s in which some task waited for a CPU (Linux PSI), in percent:
    other work on the machine, which the figures of that run include."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    found = re.search(r"avg10=([\d.]+)", line)
    return float(found.group(1)) if found else None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(pid: int, timeout: float = 120.0) -> float:
    """Wait until the freshly loaded service is idle (RocksDB compacts the rebuilt store
    in the background for a while): measure the steady state, not the compaction."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = _cpu_seconds(pid)
        time.sleep(1.0)
        if _cpu_seconds(pid) - before < 0.05:
            break
    return time.monotonic() - started


def _latency(out: str, which: str) -> float | None:
    found = re.search(rf"^\s+{re.escape(which)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if found is None:
        return None
    value = float(found.group(1))
    return round(value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)], 3)


def _script(base: str, records: int) -> str:
    return base.replace("RECORDS", str(records))


def _paced(script: str, rate: float, connections: int) -> str:
    delay_ms = max(1, round(1000 * connections / max(rate, 1.0)))
    return script + PACED_LUA.replace("DELAY_MS", str(delay_ms))


def _setup(bootstrap: str, tmp: Path, records: int) -> tuple[str, str, dict[str, Any]]:
    """Provision a hub (own prefix), publish the records; returns (prefix, token, info)."""
    prefix = f"benchds{uuid.uuid4().hex[:6]}."
    config = isolated_config(bootstrap, prefix, tmp / "coordinator")
    state = ControlState(config)
    admin = kafka.admin_client(bootstrap)
    ensure_hub_topics(admin, state.topics, 1)
    state.start()
    try:
        sample = load_sample("mzj.dibao")
        members = build_members()
        subscription = Subscription(
            id="bench-ds-rsj",
            resource=sample.resource.code,
            subscriber=CALLER,
            jurisdiction="110105000000",
            purpose="低保资格核验",
            delivery=ShareMethod.SERVICE,
        )
        schema_id = provision(state, admin, sample, members, [subscription])
        codec = state.registry.codec(schema_id)
        topic = state.topics.source(sample.resource.department, sample.resource.code)
        publish_s = _publish(bootstrap, topic, codec, schema_id, records)
    finally:
        state.stop()
    return prefix, members[CALLER].token, {"publish_s": round(publish_s, 1)}


def _start_service(
    bootstrap: str, prefix: str, tmp: Path, port: int, log: Any
) -> subprocess.Popen[bytes]:
    config = tmp / "ds.toml"
    config.write_text(
        f"""state_dir = "{tmp / "ds-state"}"
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
[metrics]
port = 0
[data_service]
port = {port}
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
    cmd = [sys.executable, "-m", "hub.cli", "--log-level", "WARNING", "serve"]
    cmd += ["--roles", "data-service", "--config", str(config)]
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=_pinned(SERVER_CPU),
    )


def run(args: argparse.Namespace) -> int:
    if args.serve_plain:
        serve_plain(args.serve_plain)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    records = args.records or (100_000 if args.quick else 1_000_000)
    duration = args.duration or (3.0 if args.quick else 5.0)
    connections = args.connections
    tmp = Path(tempfile.mkdtemp(prefix="govhub-bench-ds-"))
    local: LocalKafka | None = None
    procs: list[subprocess.Popen[bytes]] = []
    bootstrap = args.bootstrap
    try:
        if not bootstrap:
            local = LocalKafka(tmp / "kafka", base_port=find_free_base_port(), heap_mb=768)
            bootstrap = local.up()
        prefix, token, info = _setup(bootstrap, tmp, records)
        plain_port, ds_port = _free_port(), _free_port()
        with open(tmp / "servers.log", "ab") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "hub.cli",
                        "bench",
                        "data-service",
                        "--serve-plain",
                        str(plain_port),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    preexec_fn=_pinned(SERVER_CPU),
                )
            )
            service = _start_service(bootstrap, prefix, tmp, ds_port, log)
            procs.append(service)
            ds_url = f"http://127.0.0.1:{ds_port}"
            rebuild_s = _wait_ready(ds_url + "/readyz", service, 600)
            info["rebuild_s"] = round(rebuild_s, 1)
            info["rebuild_records_per_s"] = round(records / rebuild_s)
            info["settle_s"] = round(_settle(service.pid), 1)
            _wait_ready(f"http://127.0.0.1:{plain_port}/", procs[0], 30)
            # Warm the token cache (one scrypt check) and the compiled view.
            request = urllib.request.Request(ds_url + "/v1/data/dibao/records/110105000000000001")
            request.add_header("Authorization", f"Bearer {token}")
            urllib.request.urlopen(request, timeout=10).read()
        scenarios = {
            # The same generated request as ``lookup`` (a Lua request() per call, a random
            # key in the path): the client does the same work per request for both.
            "plain": (f"http://127.0.0.1:{plain_port}/", _script(LOOKUP_LUA, records)),
            "plain_post": (f"http://127.0.0.1:{plain_port}/", _script(VERIFY_LUA, records)),
            "lookup": (ds_url, _script(LOOKUP_LUA, records)),
            "verify": (ds_url, _script(VERIFY_LUA, records)),
        }
        # Interleaved rounds, best round kept per scenario and figure: other work on a
        # shared machine only ever makes a round slower, never faster.
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
        for _ in range(args.rounds):
            for name, (url, script) in scenarios.items():
                rounds[name].append(_wrk(url, duration, connections, token, script, tmp))
        results: dict[str, Any] = {}
        for name, (url, script) in scenarios.items():
            best = max(rounds[name], key=lambda r: r["requests_per_s"])
            halves = [
                _wrk(
                    url,
                    duration,
                    args.paced_connections,
                    token,
                    _paced(script, best["requests_per_s"] / 2, args.paced_connections),
                    tmp,
                )
                for _ in range(args.rounds)
            ]
            half = min(halves, key=lambda r: r["p99_ms"] if r["p99_ms"] is not None else 1e9)
            results[name] = {
                "requests_per_s": best["requests_per_s"],
                "requests_per_s_rounds": [r["requests_per_s"] for r in rounds[name]],
                "errors": sum(r["errors"] for r in rounds[name]),
                "p99_ms_at_full_load": best["p99_ms"],
                "half_load_requests_per_s": half["requests_per_s"],
                "p50_ms_at_half_load": half["p50_ms"],
                "p99_ms_at_half_load": half["p99_ms"],
                "p99_ms_at_half_load_rounds": [r["p99_ms"] for r in halves],
                "cpu_pressure_pct_rounds": [r["cpu_pressure"] for r in rounds[name]],
                "cpu_pressure_pct_half_load_rounds": [r["cpu_pressure"] for r in halves],
                "client_cpu_pct_rounds": [r["client_cpu_pct"] for r in rounds[name]],
                "half_load_errors": sum(r["errors"] for r in halves),
            }
        plain_rate = results["plain"]["requests_per_s"]
        for name in ("lookup", "verify"):
            results[name]["ratio_to_plain"] = round(results[name]["requests_per_s"] / plain_rate, 3)
        # The same POST (body included) to the plain handler: verify's like-for-like baseline.
        results["verify"]["ratio_to_plain_same_request"] = round(
            results["verify"]["requests_per_s"] / results["plain_post"]["requests_per_s"], 3
        )
        worst_p99 = max(results[n]["p99_ms_at_half_load"] or 1e9 for n in ("lookup", "verify"))
        worst_ratio = min(results[n]["ratio_to_plain"] for n in ("lookup", "verify"))
        result = {
            "benchmark": "data-service",
            "at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(),
            "quick": bool(args.quick),
            "records": records,
            "duration_s": duration,
            "connections": connections,
            "paced_connections": args.paced_connections,
            "broker": "external" if args.bootstrap else "local",
            **info,
            "scenarios": results,
            "goals": GOALS,
            "goals_met": {
                "ratio_to_plain": worst_ratio >= GOALS["ratio_to_plain"],
                "p99_ms_at_half_load": worst_p99 <= GOALS["p99_ms_at_half_load"],
                "rebuild_s": info["rebuild_s"] <= GOALS["rebuild_s"],
            },
        }
        emit(result, args.json)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if local is not None:
            local.down()
        shutil.rmtree(tmp, ignore_errors=True)
