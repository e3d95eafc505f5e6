"""Real processes for end-to-end tests: Daphne serving the ASGI app, and db_worker, both on the
test database (so the data a test creates must be committed: transactional tests)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.db import connection

from tests.fakes.llm_server import free_port

ROOT = Path(__file__).resolve().parent.parent
APPLICATION_NAME = "leancore-test-server"
BIN = Path(sys.executable).parent


@contextmanager
def many_database_connections() -> Iterator[None]:
    """Held by the tests that take a large share of PostgreSQL's connections (two machines' stack,
    fifty spenders on one account): one of them at a time across the test workers, so that none
    finds the server's connections taken by another (its servers' pools would time out: a 503)."""
    server = connection.settings_dict
    lock = (
        Path(tempfile.gettempdir())
        / f"leancore-tests-pg-{server.get('HOST') or 'local'}-{server.get('PORT') or 5432}.lock"
    )
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def test_database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = f"{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}"
    return f"postgres://{s['USER']}{password}@{host}/{s['NAME']}?application_name={APPLICATION_NAME}"


def redis_url_for_tests() -> str:
    """The Redis server of the tests that need one: a missing one fails them, never skips them."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        raise RuntimeError("TEST_REDIS_URL must name a Redis server (the test command starts one and sets it)")
    return url


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MCP_ALLOW_PRIVATE_NETWORKS": "true",
            "PYTHONUNBUFFERED": "1",
            "DB_CONN_MAX_AGE": "0",
            "DB_POOL_SIZE": "5",  # as in production: a bounded pool (closed when the server stops)
            "LLM_IDLE_TIMEOUT": "3",  # a provider that hangs is given up in seconds, not a minute
            # its own throttle counters: the servers of other tests running meanwhile share the
            # tests' Redis and the client address 127.0.0.1 (one test's 51 failed logins are not another's)
            "REDIS_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
        }
    )
    env.pop("REDIS_URL", None)
    env.update(extra or {})
    return env


STARTUP_SECONDS = 120


class Daphne:
    """One Daphne process, or (``all_cores``) ``manage.py serve`` with its server and worker children,
    on one port or (``ports``) on several, as the production stack runs on several machines."""

    def __init__(self, env: dict[str, str], *, all_cores: tuple[int, int] | None = None, ports: int = 1) -> None:
        self.env_database = env["DATABASE_URL"]
        self.ports = [free_port() for _ in range(ports)]
        self.port = self.ports[0]
        self.log = ROOT / "var" / f"daphne-{self.port}.log"
        self.log.parent.mkdir(exist_ok=True)
        command = [
            str(BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--websocket_timeout",
            "-1",
            "leancore.asgi:application",
        ]
        if all_cores:
            processes, workers = all_cores
            command = [sys.executable, "manage.py", "serve"]
            command += [argument for port in self.ports for argument in ("--port", str(port))]
            command += ["--processes", str(processes), "--workers", str(workers)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        # Importing the project takes several seconds of CPU per process; on two loaded cores, with
        # a supervisor starting three children, that can pass half a minute.
        deadline = time.monotonic() + STARTUP_SECONDS
        waiting = list(self.urls)
        while waiting:
            try:
                if httpx.get(f"{waiting[0]}/health", timeout=1).status_code in (200, 503):
                    waiting.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()  # nothing left running (a supervisor's children included) for later tests
                raise RuntimeError(f"Daphne did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.env_database.startswith("postgres"):
            wait_for_disconnect(self.env_database)


def wait_for_disconnect(database_url: str, timeout: float = 5) -> None:
    """A stopped process's PostgreSQL backend goes away a moment later; the test database can only
    be dropped once it has."""
    from urllib.parse import parse_qs

    import psycopg

    path, _, query = database_url.partition("?")
    base, _, name = path.rpartition("/")
    application = parse_qs(query).get("application_name", [APPLICATION_NAME])[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                [name, application],
            ).fetchone()
            if row[0] == 0:
                return
            time.sleep(0.05)


def run_worker_batch(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """``manage.py db_worker --batch``: runs every queued job, then exits."""
    result = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--no-reload"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wait_for_disconnect(env["DATABASE_URL"])
    return result


def terminate_connections(database: str) -> None:
    import psycopg

    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    url = f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )


class PrivateRedis:
    """A Redis server of the test's own (never the machine's shared one), which a test may stop and
    start again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                *(shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """Gone at once, as a crashed or unreachable Redis is: no goodbye to its clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are needed for this test")
    return Path(initdb).parent


class ThrowawayPostgres:
    """A PostgreSQL server of the test's own (``initdb`` in a temporary folder, on a free port), which
    a test may stop and start again; it holds a copy of the test database."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        # a folder of its own (not under pytest's, which only root may enter), removed by ``remove``
        self.directory = Path(tempfile.mkdtemp(prefix="leancore-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.data.mkdir()
        self._as_owner: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own system user runs it
            shutil.chown(self.directory, "postgres")
            shutil.chown(self.data, "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as_owner, str(self.bin / program), *args], check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """As in a restart or a crash: every connection is cut at once."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        """Stopped (if it still runs) and its folder deleted."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def copy_of(self, source_url: str, database: str = "leancore") -> str:
        """A new database on this server holding everything ``source_url`` holds (schema and data)."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database)
        dump = subprocess.run(
            [str(self.bin / "pg_dump"), "--no-owner", "--no-privileges", source_url.partition("?")[0]],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [str(self.bin / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url(database)],
            input=dump.stdout,
            check=True,
            capture_output=True,
            timeout=120,
        )
        return self.url(database)
