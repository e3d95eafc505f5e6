"""``manage.py check --deploy`` is clean with the production settings of ``.env.example`` (and warns
when METRICS_TOKEN is left out of them), and still sees LeanCore's security middleware (subclasses
of Django's) for what they are."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from cryptography.fernet import Fernet
from django.core import checks

from leancore.checks import security_of_the_subclassed_middleware
from tests.servers import ROOT


def _example_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SECURE_", "DB_"))}
    for raw in (ROOT / ".env.example").read_text().splitlines():
        line = raw.split("  #", 1)[0].strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    env["FIELD_ENCRYPTION_KEY"] = Fernet.generate_key().decode()  # its own key: required with DEBUG off
    env["METRICS_TOKEN"] = secrets.token_urlsafe(32)  # unset: a warning (no metrics); short: an error
    return env


def _check(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", *options, "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_is_clean_with_the_production_settings():
    done = _check(_example_env(), "--deploy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_warns_when_metrics_token_is_unset_in_production():
    env = {key: value for key, value in _example_env().items() if key != "METRICS_TOKEN"}
    done = _check(env, "--deploy")
    assert done.returncode != 0
    assert "leancore.W020" in done.stderr + done.stdout
    assert "METRICS_TOKEN is not set" in done.stderr + done.stdout
    assert "leancore.W020" not in (plain := _check(env)).stderr + plain.stdout  # a deployment check only


def test_the_subclassed_middleware_counts_as_django_s_and_its_settings_are_checked(settings):
    settings.SECURE_HSTS_SECONDS = 0
    ids = {message.id for message in security_of_the_subclassed_middleware(None)}
    assert "security.W004" in ids  # HSTS is checked: the security middleware is seen
    assert not ids & {"leancore.W001", "leancore.W002", "leancore.W003"}


def test_a_security_middleware_really_missing_is_still_reported(settings):
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if not m.endswith((".SecurityMiddleware", ".CsrfViewMiddleware"))
    ]
    ids = {message.id for message in security_of_the_subclassed_middleware(None)}
    assert {"leancore.W001", "leancore.W003"} <= ids
    assert all(isinstance(message, checks.CheckMessage) for message in security_of_the_subclassed_middleware(None))


def test_ways_round_the_ssrf_guard_are_reported_when_debug_is_off(settings):
    from leancore.checks import mcp_private_addresses_in_production

    settings.DEBUG = False
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    settings.MCP_ALLOWED_PRIVATE_URLS = []
    assert mcp_private_addresses_in_production(None) == []
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    settings.MCP_ALLOWED_PRIVATE_URLS = ["http://127.0.0.1:8765"]
    assert [m.id for m in mcp_private_addresses_in_production(None)] == ["leancore.W010", "leancore.W011"]
    settings.DEBUG = True  # development: the demo server's allow-list is what run.sh sets
    assert mcp_private_addresses_in_production(None) == []
