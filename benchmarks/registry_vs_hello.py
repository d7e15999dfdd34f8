"""The schema registry's HTTP path vs a plain aiohttp hello-world, on one machine, in one run.

Three processes: a hello-world aiohttp app, the hub's api (``govhub serve --roles api``, the
real thing, with its Kafka-backed registry), and the load generator ``wrk`` (C, so the
client is not what is measured). The servers share one CPU, wrk has the other. Each
scenario runs for a bounded time against loopback only:

- ``hello``: ``GET /`` of the hello-world app (the baseline);
- ``get_schema_by_id``: the cached ``GET /registry/schemas/ids/{id}``;
- ``register_existing``: ``POST /registry/subjects/{s}/versions`` of a registered schema;
- ``register_new_subjects``: a new schema under a new subject per request (Kafka writes);
- ``register_new_versions``: a new version of one subject per request (serialised per
  subject, each checked for compatibility).

The cheap scenarios run in interleaved rounds and keep their best round, so that a burst of
other work on the machine does not decide the ratio.

    python benchmarks/registry_vs_hello.py [--duration 5] [--bootstrap HOST:PORT]

Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

RESULTS = Path(__file__).parent / "results"
SERVER_CPU, LOAD_CPU = 0, 1
SCHEMA = '{"type":"record","name":"Bench","fields":[{"name":"id","type":"string"}]}'
SR_JSON = "application/vnd.schemaregistry.v1+json"

# A new schema per request (a field named after wrk's counter; one wrk thread, so the
# counter is unique). SUBJECT is a Lua expression, BODY a format with one %d.
NEW_SCHEMAS_LUA = """
local n = 0
request = function()
  n = n + 1
  local subject = SUBJECT
  local body = string.format([==[BODY]==], n)
  return wrk.format("POST", "/registry/subjects/" .. subject .. "/versions",
                    {["Content-Type"] = "CONTENT_TYPE", ["Authorization"] = "AUTHORIZATION"}, body)
end
"""
NEW_SCHEMA_BODY = json.dumps(
    {
        "schema": json.dumps(
            {
                "type": "record",
                "name": "Bench",
                "fields": [
                    {"name": "id", "type": "string"},
                    {"name": "f%d", "type": "string", "default": ""},
                ],
            }
        )
    }
)

POST_LUA = """
wrk.method = "POST"
wrk.body = BODY
wrk.headers["Content-Type"] = "CONTENT_TYPE"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int) -> Callable[[], None]:
    def pin() -> None:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
            os.sched_setaffinity(0, {cpu})

    return pin


def serve_hello(port: int) -> None:
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="Hello, World!")

    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


# Every request carries the admin's bearer token (hello-world ignores it): the registry
# authenticates each call, so the comparison includes that cost.
AUTH: dict[str, str] = {}


def post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", SR_JSON)
    request.add_header("Authorization", AUTH["header"])
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wrk(
    url: str, duration: float, connections: int, script: str | None, tmp: Path
) -> dict[str, Any]:
    """Requests per second and non-2xx/socket errors of one wrk run."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--timeout", "10s"]
    cmd += ["-H", f"Authorization: {AUTH['header']}"]
    if script is not None:
        path = tmp / f"wrk-{uuid.uuid4().hex[:6]}.lua"
        path.write_text(script)
        cmd += ["-s", str(path)]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, check=True, preexec_fn=pinned(LOAD_CPU)
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return {"requests_per_s": round(rate), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--serve-hello", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="govhub-bench-registry-"))
    local = None
    bootstrap = args.bootstrap
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if not bootstrap:
            from hub.localkafka import LocalKafka, find_free_base_port

            local = LocalKafka(tmp / "kafka", base_port=find_free_base_port())
            bootstrap = local.up()
        hello_port, api_port = free_port(), free_port()
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        from hub.config import isolated_config
        from hub.parties.bootstrap import bootstrap_admin

        _, token = bootstrap_admin(
            isolated_config(bootstrap, prefix, tmp / "admin"),
            "bench-admin",
            "基准测试管理员",
            "110000000000",
            1,
        )
        AUTH["header"] = f"Bearer {token}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVHUB_", "KAFKA_"))}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            GOVHUB_TOPIC_PREFIX=prefix,
            GOVHUB_API_PORT=str(api_port),
            GOVHUB_STATE_DIR=str(tmp / "state"),
        )
        with open(tmp / "servers.log", "wb") as log:
            for cmd in (
                [sys.executable, __file__, "--serve-hello", str(hello_port)],
                [sys.executable, "-m", "hub.cli", "serve", "--roles", "api"],
            ):
                processes.append(
                    subprocess.Popen(
                        cmd, env=env, stdout=log, stderr=log, preexec_fn=pinned(SERVER_CPU)
                    )
                )
        hello = f"http://127.0.0.1:{hello_port}/"
        api = f"http://127.0.0.1:{api_port}"
        wait_http(hello)
        wait_http(api + "/readyz")
        registry = api + "/registry"
        schema_id = post_json(registry + "/subjects/bench-value/versions", {"schema": SCHEMA})["id"]
        run = f"r{uuid.uuid4().hex[:4]}"
        new_schemas = (
            NEW_SCHEMAS_LUA.replace("CONTENT_TYPE", SR_JSON)
            .replace("AUTHORIZATION", AUTH["header"])
            .replace("BODY", NEW_SCHEMA_BODY)
        )
        scenarios: dict[str, tuple[str, str | None, int]] = {
            "hello": (hello, None, args.connections),
            "get_schema_by_id": (f"{registry}/schemas/ids/{schema_id}", None, args.connections),
            "register_existing": (
                f"{registry}/subjects/bench-value/versions",
                POST_LUA.replace("BODY", json.dumps(json.dumps({"schema": SCHEMA}))).replace(
                    "CONTENT_TYPE", SR_JSON
                ),
                args.connections,
            ),
            "register_new_subjects": (
                api,
                new_schemas.replace("SUBJECT", f'string.format("{run}-new-%d-value", n)'),
                8,
            ),
            "register_new_versions": (
                api,
                new_schemas.replace("SUBJECT", f'"{run}-one-value"'),
                8,
            ),
        }
        # Other work on the machine moves the numbers: the cheap scenarios run interleaved,
        # several rounds, and each keeps its best round.
        results: dict[str, dict[str, Any]] = {}
        for round_no in range(args.rounds):
            for name, (url, script, connections) in scenarios.items():
                if name.startswith("register_new") and round_no > 0:
                    continue
                if round_no == 0 and not name.startswith("register_new"):
                    wrk(url, 1, connections, script, tmp)  # warm-up
                result = wrk(url, args.duration, connections, script, tmp)
                best = results.get(name)
                if best is None or result["requests_per_s"] > best["requests_per_s"]:
                    results[name] = result
                print(f"round {round_no + 1}: {name:24s} {result['requests_per_s']:>8d} req/s")
        base_rate = results["hello"]["requests_per_s"]
        for name, result in results.items():
            result["ratio_to_hello"] = round(result["requests_per_s"] / base_rate, 3)
            print(
                f"{name:24s} {result['requests_per_s']:>8d} req/s  "
                f"{result['ratio_to_hello']:.3f} x hello-world"
            )
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
        summary = {
            "benchmark": "registry_vs_hello",
            "load_generator": f"wrk {version[1] if len(version) > 1 else '?'}, 1 thread, "
            f"{args.duration:.0f} s per scenario, best of {args.rounds} interleaved rounds "
            "(registrations of new schemas: one round), loopback",
            "servers_cpu": "one shared core; wrk on the other",
            "scenarios": results,
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "registry_vs_hello.json").write_text(json.dumps(summary, indent=2) + "\n")
        return 0
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.wait(30)
        if local is not None:
            local.down()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
