"""The fuzz step of ``scripts/test.sh``: Schemathesis over the service's own ``/api/schema/``.

A throwaway PostgreSQL database is migrated, one Daphne process serves it (as in production:
``DEBUG=false``), and Schemathesis runs every operation, authenticated as the owner of a fresh
organization (``tests/fuzz/hooks.py``), with a fixed seed and a bounded number of examples, and
the checks ``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance`` and
``response_schema_conformance``, stateful links included. MCP URLs in the database's catalog and
in every request body point at a closed loopback port: nothing connects off this machine.

    .venv/bin/python -m tests.fuzz.run [--max-examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOOPBACK_URL = "http://127.0.0.1:9/mcp"  # the discard port: nothing listens there
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
CONFINE_CATALOG = f"from mcps.models import CatalogEntry; CatalogEntry.objects.update(url_template={LOOPBACK_URL!r})"
# The fuzzing identity: the owner of a fresh organization who is also staff (so that staff-only
# operations such as granting credits run too), with a second member to act on.
MAKE_OWNER = (
    "import json; from signup.services import sign_up; from accounts.services import issue_tokens;"
    "from orgs.models import Membership; from accounts.models import User; from django.utils import timezone;"
    "user, org = sign_up(organization_name='Fuzz', name='Fuzz Owner', email='fuzz@example.com',"
    " password='Fuzz-Owner-Passw0rd!');"
    "user.is_staff = user.is_superuser = True; user.save(update_fields=['is_staff', 'is_superuser']);"
    "other = User.objects.create_user(email='member@example.com', password='Fuzz-Member-Passw0rd!', name='Member');"
    "Membership.all_orgs.create(organization=org, user=other, role='member', status='active', joined_at=timezone.now());"
    "print(json.dumps({'token': issue_tokens(user=user).access, 'org': str(org.pk)}))"
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_urls(base_url: str, name: str) -> tuple[str, str]:
    parts = urlsplit(base_url)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
    return admin, urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def _recreate(admin_url: str, name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", "25")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "20261129")))
    parser.add_argument("--workers", default=os.environ.get("FUZZ_WORKERS", "2"))
    args = parser.parse_args()

    name = f"leancore_fuzz_{os.getpid()}"
    admin_url, database_url = _database_urls(os.environ["DATABASE_URL"], name)
    scratch = Path(tempfile.mkdtemp(prefix="leancore-fuzz-"))
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "fuzz-secret-key-0123456789abcdef0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DB_CONN_MAX_AGE": "0",
        "DB_POOL_SIZE": "4",  # one case at a time; it runs beside the suite, whose 50-spender test needs 50 connections
        "MCP_ALLOW_PRIVATE_NETWORKS": "true",  # the rewritten loopback URLs are then accepted, and fail fast
        "MCP_SYNC_TIMEOUT_SECONDS": "3",
        "MCP_TOOL_TIMEOUT_SECONDS": "3",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(scratch / "mail"),
        "MEDIA_ROOT": str(scratch / "media"),
        "THROTTLE_CHAT": "100000/min",
        "THROTTLE_UPLOAD": "100000/min",
        "THROTTLE_REGISTER": "100000/min",
        "ACCESS_TOKEN_LIFETIME": "7200",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    env.pop("OPENAI_API_KEY", None)
    env.pop("ANTHROPIC_API_KEY", None)
    log_path = ROOT / "var" / "fuzz-server.log"
    log_path.parent.mkdir(exist_ok=True)
    _recreate(admin_url, name)
    server = None
    try:
        manage = [str(BIN / "python"), "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "shell", "-c", CONFINE_CATALOG], cwd=ROOT, env=env, check=True)
        made = subprocess.run(
            [*manage, "shell", "-c", MAKE_OWNER], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        identity = json.loads(made.stdout.strip().splitlines()[-1])
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "leancore.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print(log_path.read_text()[-4000:])
                return 1
            time.sleep(0.2)
        fuzz_env = {
            **env,
            "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
            "FUZZ_TOKEN": identity["token"],
            "FUZZ_ORG": identity["org"],
            "PYTHONPATH": str(ROOT),
        }
        command = [
            str(BIN / "schemathesis"),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{base_url}/api/schema/",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(args.max_examples),
            "--seed",
            str(args.seed),
            "--workers",
            str(args.workers),
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "too_slow,filter_too_much",
            "--no-color",
        ]
        print("$", " ".join(command), flush=True)
        result = subprocess.run(command, cwd=ROOT, env=fuzz_env, check=False)
        if result.returncode != 0:
            print(f"--- server log ({log_path}), last lines ---")
            print(log_path.read_text()[-6000:])
        return result.returncode
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        _recreate(admin_url, name, drop_only=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _stop(signum: int, frame: object) -> None:
    """Stopped (the test command ends early): leave through ``main``'s cleanup, server and database."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    status = main()
    print(f"Schemathesis step: {time.monotonic() - started:.0f} s (database, server and run)", flush=True)
    sys.exit(status)
