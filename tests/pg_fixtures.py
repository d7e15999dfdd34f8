"""Pytest fixtures for tests that need a real PostgreSQL server.

Loaded from ``tests/conftest.py`` with ``pytest_plugins = [..., "tests.pg_fixtures"]``.

``pg_server`` starts a private cluster once per session from Debian's ``postgresql``
package (``scripts/postgres.sh install`` puts it there; the fixture runs it when the
binaries are missing and it may): ``initdb`` into a temporary folder — as the ``postgres``
OS user when the tests run as root, since initdb refuses root — and ``pg_ctl`` on a free
loopback port with the socket in that folder. Clusters left by sessions that died are
stopped first. ``pg_database`` gives each test a fresh database; ``pg_server.restart()``
lets fault tests take the server away under a connector.

``PG_TEST_DSN`` skips all of this and uses an existing server (its user needs CREATEDB).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

ROOT = Path(tempfile.gettempdir()) / "govhub-test-pg"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
DSN_ENV = "PG_TEST_DSN"


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    proc = subprocess.run(["bash", str(SCRIPT), "bindir"], capture_output=True, text=True)
    return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def ensure_installed() -> Path:
    """The folder with initdb/pg_ctl, installing the Debian package if missing and allowed."""
    found = find_bindir()
    if found is not None:
        return found
    proc = subprocess.run(
        ["bash", str(SCRIPT), "install"], capture_output=True, text=True, timeout=900
    )
    found = find_bindir()
    if found is None:
        raise PostgresUnavailable(
            "PostgreSQL is not installed and could not be installed "
            f"({proc.stderr.strip()[-300:] or 'no detail'}); as root: scripts/postgres.sh install"
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A private cluster: ``dsn(database)`` to connect, ``stop``/``start`` for fault tests."""

    bindir: Path | None
    folder: Path | None
    host: str
    port: int
    user: str = "postgres"
    password: str | None = field(default=None, repr=False)
    _as_postgres: bool = field(default=False, repr=False)

    def dsn(self, database: str = "postgres") -> str:
        auth = self.user if self.password is None else f"{self.user}:{quote(self.password)}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log_tail = ""
            if self.folder is not None and (self.folder / "server.log").exists():
                log_tail = (self.folder / "server.log").read_text(errors="replace")[-1500:]
            raise PostgresUnavailable(
                f"{' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}"
                f"\n{log_tail}"
            )

    def init(self) -> None:
        assert self.bindir is not None and self.folder is not None
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.folder / "data"),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )

    def start(self) -> None:
        assert self.bindir is not None and self.folder is not None
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses={self.host} "
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=60 -c shared_buffers=32MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no shutdown checkpoint)."""
        assert self.bindir is not None and self.folder is not None
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "-w", "stop"
        )

    def restart(self, down_for: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()


def start_private_server(root: Path = ROOT) -> PostgresServer:
    bindir = ensure_installed()
    reap_leftovers(root, bindir)
    folder = root / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    as_postgres = os.geteuid() == 0
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(folder, "postgres")
    server = PostgresServer(bindir, folder, "127.0.0.1", free_port(), _as_postgres=as_postgres)
    server.init()
    server.start()
    return server


def reap_leftovers(root: Path, bindir: Path) -> None:
    """Stop clusters of test sessions that died without tearing down."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if not folder.name.isdigit() or _pid_alive(int(folder.name)):
            continue
        server = PostgresServer(bindir, folder, "127.0.0.1", 0, _as_postgres=os.geteuid() == 0)
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _external_server(dsn: str) -> PostgresServer:
    parts = urlsplit(dsn)
    return PostgresServer(
        None,
        None,
        parts.hostname or "127.0.0.1",
        parts.port or 5432,
        unquote(parts.username or "postgres"),
        unquote(parts.password) if parts.password else None,
    )


def psql(server: PostgresServer, sql: str, database: str = "postgres") -> None:
    """Run SQL with asyncpg in a throwaway loop (fixtures are synchronous)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(server.dsn(database))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The process's one test server, started on first use (also outside fixtures, e.g. by
    conformance cases); stopped by the session fixture or at exit."""
    global _shared
    if _shared is None:
        configured = os.environ.get(DSN_ENV, "").strip()
        if configured:
            _shared = _external_server(configured)
        else:
            _shared = start_private_server()
            atexit.register(stop_shared_server)
    return _shared


def stop_shared_server() -> None:
    global _shared
    server, _shared = _shared, None
    if server is None or server.folder is None:
        return
    with contextlib.suppress(Exception):
        server.stop("immediate")
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (a private cluster unless PG_TEST_DSN)."""
    pytest.importorskip("asyncpg", reason="asyncpg missing: pip install -e '.[postgres]'")
    try:
        server = shared_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
    try:
        yield server
    finally:
        stop_shared_server()


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a database made for this test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    psql(pg_server, f'CREATE DATABASE "{name}"')
    yield pg_server.dsn(name)
    with contextlib.suppress(Exception):
        psql(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
