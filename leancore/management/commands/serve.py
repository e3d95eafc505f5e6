"""``manage.py serve``: the production stack on every core of one machine.

One listening socket, opened here and inherited by N Daphne processes (``--fd``: the kernel spreads
connections across them; HTTP, SSE and WebSockets work on each), plus M ``db_worker`` processes.
``--port`` given several times opens one socket per port, each with its own server processes: the
stack as it runs on several machines (a load balancer in front, one PostgreSQL, one Redis), on one.
Children that die are started again; SIGTERM/SIGINT stop them all. The database pools are sized so
that servers × pool + workers × pool stays under PostgreSQL's ``max_connections``, and the plan is
printed. Several server processes need ``REDIS_URL`` (the channel layer between them).

Every child writes its Prometheus metrics to one multi-process directory (``PROMETHEUS_MULTIPROC_DIR``
when set, else a temporary one removed at exit), emptied at start, so that ``GET /metrics`` on any
server process covers them all; a child that dies is marked dead there (its live gauges go).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from core.metrics_export import MULTIPROC_ENV, MultiprocessDirectory

PR_SET_PDEATHSIG = 1
RESERVED = 10  # connections left for operators, migrations and PostgreSQL's own reserve
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Plan:
    servers: int
    workers: int
    server_pool: int
    max_connections: int | None
    worker_pool: int = 2

    @property
    def total(self) -> int:
        return self.servers * self.server_pool + self.workers * self.worker_pool

    def describe(self) -> str:
        if self.max_connections is None:
            return f"{self.servers} server process(es) and {self.workers} worker(s) on SQLite"
        return (
            f"{self.servers} server process(es) × pool {self.server_pool} + {self.workers} worker(s) × pool "
            f"{self.worker_pool} = at most {self.total} of PostgreSQL's {self.max_connections} connections "
            f"({RESERVED} kept free)"
        )


def connections_per_worker() -> int:
    """A db_worker's connections: one per job it runs at once (WORKER_TURN_CONCURRENCY turns and
    WEBHOOK_WORKER_CONCURRENCY deliveries), and one for the maintenance job."""
    return settings.WORKER_TURN_CONCURRENCY + settings.WEBHOOK_WORKER_CONCURRENCY + 1


def plan_pools(
    *, servers: int, workers: int, wanted_pool: int, max_connections: int | None, worker_pool: int | None = None
) -> Plan:
    """The largest pool per server process (up to ``wanted_pool``) that keeps every process together
    under ``max_connections`` (each worker with ``worker_pool`` connections)."""
    per_worker = worker_pool if worker_pool is not None else connections_per_worker()
    if max_connections is None:
        return Plan(servers, workers, 0, None, per_worker)
    budget = max_connections - RESERVED - workers * per_worker
    pool = min(wanted_pool, budget // servers) if servers else 0
    if pool < 2:
        raise CommandError(
            f"PostgreSQL allows {max_connections} connections: too few for {servers} server process(es) and "
            f"{workers} worker(s). Raise max_connections or start fewer processes."
        )
    return Plan(servers, workers, pool, max_connections, per_worker)


def _die_with_parent(parent: int) -> None:
    """In the child: the kernel sends it SIGTERM if the supervisor dies, even by SIGKILL (Linux),
    so no server is left serving on the socket on its own. A supervisor that died between the fork
    and this call (the signal would never come) ends the child at once."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)


def _as_json_line(process: str, text: str, level: str = "ERROR") -> str:
    """``LOG_FORMAT=json``: a child's line as one JSON object naming the process; a line that is no
    log record (a crash's traceback written to stderr) becomes the message of one."""
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": "leancore.serve",
            "message": text,
        }
    return json.dumps({**record, "process": process}, ensure_ascii=False) + "\n"


def _relay(prefix: str, stream: IO[bytes], out: IO[str]) -> None:
    as_json = settings.LOG_FORMAT == "json"
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        out.write(_as_json_line(prefix, line.rstrip("\n")) if as_json else f"{prefix} | {line}")
        out.flush()


class Command(BaseCommand):
    help = "Serve LeanCore on every core: N Daphne processes on one socket, plus M background workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port",
            type=int,
            action="append",
            dest="ports",
            help="port to listen on (default 8000); give it several times for one socket per port",
        )
        parser.add_argument(
            "--processes",
            type=int,
            help="server processes per port (default: the core count for one port, 1 for several)",
        )
        parser.add_argument("--workers", type=int, default=1, help="db_worker processes (default: 1)")
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="gone: set TRUSTED_PROXY_COUNT instead (the servers never rewrite the client address)",
        )

    def handle(self, *args: object, **options: Any) -> None:  # argparse's values, typed by each option
        if options["proxy_headers"]:
            # Daphne's --proxy-headers took the first X-Forwarded-For entry, the one a client writes:
            # the address below Django was the client's choice. The servers keep the TCP peer, and
            # core.throttles.client_address alone reads the header, as far as TRUSTED_PROXY_COUNT says.
            raise CommandError(
                "--proxy-headers is gone: behind a proxy that sets X-Forwarded-For, set TRUSTED_PROXY_COUNT "
                "(1 for one proxy) instead."
            )
        ports: list[int] = options["ports"] or [8000]
        per_port = options["processes"]
        if per_port is None:  # every core behind one port; one process per port when there are several
            per_port = (os.cpu_count() or 1) if len(ports) == 1 else 1
        servers, workers = per_port * len(ports), options["workers"]
        if per_port < 1 or workers < 0 or len(set(ports)) != len(ports):
            raise CommandError("--processes must be at least 1, --workers at least 0, and each --port different.")
        embedded = False
        if not settings.REDIS_URL:
            if servers > 1:
                raise CommandError("Several server processes share WebSocket events through Redis: set REDIS_URL.")
            # one process and no Redis: the worker runs inside the server, so background turns
            # still reach its WebSockets (a separate worker process could not publish to them)
            embedded, workers = workers > 0, 0
        plan = plan_pools(
            servers=servers,
            workers=workers,
            wanted_pool=settings.DB_POOL_SIZE or 10,
            max_connections=self._max_connections(),
        )
        listeners = [self._listen(options["host"], port) for port in ports]
        # every child writes its metrics there; a scrape of any server process adds them all up
        metrics_directory = MultiprocessDirectory.prepare()
        base_env = {**os.environ, MULTIPROC_ENV: str(metrics_directory.path)}
        server_env = {
            **base_env,
            "EMBEDDED_WORKER": "true" if embedded else "false",
            "DB_POOL_SIZE": str(plan.server_pool or 0),
        }
        worker_env = {**base_env, "EMBEDDED_WORKER": "false", "DB_POOL_SIZE": str(plan.worker_pool)}
        specs = [
            (
                f"server-{i + 1}" if len(ports) == 1 else f"server-{port}-{i + 1}",
                [
                    str(BIN / "daphne"),
                    "--fd",
                    str(listener.fileno()),
                    "--websocket_timeout",
                    "-1",  # a WebSocket stays open as long as its client keeps it
                    "leancore.asgi:application",  # never --proxy-headers: the peer stays the peer
                ],
                server_env,
            )
            for port, listener in zip(ports, listeners, strict=True)
            for i in range(per_port)
        ] + [
            (f"worker-{i + 1}", [str(BIN / "python"), "manage.py", "db_worker", "--no-reload"], worker_env)
            for i in range(workers)
        ]
        worker_note = " (the background worker runs inside the server: no REDIS_URL)" if embedded else ""
        address = ", ".join(f"http://{options['host']}:{port}" for port in ports)
        banner = f"LeanCore on {address}: {plan.describe()}{worker_note}."
        if settings.LOG_FORMAT == "json":
            banner = _as_json_line("serve", banner, "INFO").rstrip("\n")
        self.stdout.write(banner, ending="\n")
        self.stdout.flush()
        try:
            self._supervise(specs, tuple(listener.fileno() for listener in listeners), metrics_directory)
        finally:
            metrics_directory.remove()

    @staticmethod
    def _listen(host: str, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
        listener.listen(1024)
        listener.set_inheritable(True)
        return listener

    @staticmethod
    def _max_connections() -> int | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            value = int(cursor.fetchone()[0])
        connection.close()
        # the supervisor itself keeps no connection for its whole life
        connection.close_pool()  # type: ignore[attr-defined]  # PostgreSQL's wrapper has it
        return value

    def _supervise(
        self, specs: list[tuple[str, list[str], dict[str, str]]], fds: tuple[int, ...], metrics: MultiprocessDirectory
    ) -> None:
        stopping = threading.Event()
        children: dict[str, subprocess.Popen[bytes]] = {}

        def start(name: str, command: list[str], env: dict[str, str]) -> None:
            process = subprocess.Popen(  # noqa: S603 - our own daphne and manage.py
                command,
                cwd=settings.BASE_DIR,
                env=env,
                pass_fds=fds,
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),  # noqa: PLW1509 - no locks taken
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            threading.Thread(target=_relay, args=(name, process.stdout, self.stdout), daemon=True).start()
            children[name] = process

        def stop(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for name, command, env in specs:
            start(name, command, env)
        try:
            while not stopping.is_set():
                for name, command, env in specs:
                    code = children[name].poll()
                    if code is not None and not stopping.is_set():
                        metrics.process_died(children[name].pid)  # its WebSockets count no more
                        died = f"{name} exited with {code}; starting it again."
                        self.stderr.write(
                            _as_json_line("serve", died).rstrip("\n") if settings.LOG_FORMAT == "json" else died
                        )
                        time.sleep(0.5)
                        start(name, command, env)
                stopping.wait(0.5)
        finally:
            for process in children.values():
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + 15
            for process in children.values():
                try:
                    process.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    process.kill()
