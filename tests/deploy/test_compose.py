"""compose.yaml, the production-like stack: `docker compose config` validates it where Docker Compose
is installed (images cannot be pulled on these machines, so it is never started here); everywhere, the
YAML parses and holds the stack the README describes."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.servers import ROOT

SERVICES = {"postgres", "redis", "migrate", "app", "proxy"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    found = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    return [docker, "compose"] if found.returncode == 0 else None


def test_the_stack_has_its_services(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert set(compose["volumes"]) == {"pgdata", "static", "media"}


def test_the_app_runs_the_one_production_launcher(compose):
    app, migrate = compose["services"]["app"], compose["services"]["migrate"]
    command = " ".join(app["command"])
    for part in ("python manage.py serve", "--workers", "--proxy-headers"):
        assert part in command
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
    """Runs where Docker Compose is installed; elsewhere the checks above are what there is."""
    command = _docker_compose()
    if command is None:
        pytest.skip("no `docker compose` here (the docker client alone has no compose plugin)")
    env = {**os.environ, "SECRET_KEY": "compose-config-check-0123456789abcdef0123456789"}
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
