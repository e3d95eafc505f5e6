"""compose.yaml puts no secret in a log and tells the app who its client is. E-mail carries one-time
tokens (password resets, invitations): by default it goes to files in a volume of its own, never to
the console (the container log). The proxy's logs leave out query strings (a WebSocket may carry its
access token as ``?token=``) and the Referer (an e-mail's link carries its token). The proxy sets
``X-Forwarded-For`` to the address it sees (a client's own header is dropped) and the app trusts
exactly that one hop (``TRUSTED_PROXY_COUNT=1``). Checked on the configuration that Compose itself
resolves (``docker compose config``), with the stack's defaults."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from cryptography.fernet import Fernet

from tests.deploy.test_compose import _docker_compose
from tests.servers import ROOT

# What in an nginx log line would carry a query string or a Referer.
LEAKY_VARIABLES = ("$request ", '$request"', "$request'", "$request_uri", "$args", "$query_string", "$is_args")
LEAKY_VARIABLES += ("$arg_", "$http_referer")


def _config(**env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if key not in ("EMAIL_BACKEND", "FIELD_ENCRYPTION_KEY")}
    return subprocess.run(
        [*_docker_compose(), "-f", str(ROOT / "compose.yaml"), "config", "--format", "json"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict:
    done = _config(
        SECRET_KEY="compose-config-check-0123456789abcdef", FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode()
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def nginx(resolved) -> str:
    return resolved["configs"]["nginx"]["content"].replace("$$", "$")


def _server_block(nginx: str) -> str:
    return nginx[nginx.index("server {") :]


def test_e_mail_goes_to_files_in_a_volume_not_to_the_log(resolved):
    for name in ("app", "migrate"):
        env = resolved["services"][name]["environment"]
        backend = env["EMAIL_BACKEND"]
        assert "console" not in backend, (name, backend)
        assert backend == "django.core.mail.backends.filebased.EmailBackend", (name, backend)
    app = resolved["services"]["app"]
    path = app["environment"]["EMAIL_FILE_PATH"]
    mounts = {volume["target"]: volume for volume in app["volumes"]}
    assert path in mounts, "the mail files are in a volume of their own"
    assert mounts[path]["source"] == "mail"
    assert not mounts[path].get("read_only")
    assert path not in ("/dev/stdout", "/dev/stderr", "/proc/self/fd/1", "/proc/self/fd/2")


def test_the_proxy_logs_no_query_string_and_no_referer(nginx):
    formats = dict(re.findall(r"log_format\s+(\w+)\s+((?:'[^']*'\s*)+);", nginx))
    server = _server_block(nginx)
    access_logs = re.findall(r"access_log\s+([^;]+);", server)
    assert access_logs, "the server sets its own access log (the image's default format logs the query)"
    for directive in access_logs:
        parts = directive.split()
        if parts[0] == "off":
            continue
        assert len(parts) >= 2, f"an access log without a format uses nginx's `combined` (with the query): {directive}"
        assert parts[1] in formats, f"unknown log format {parts[1]}"
        text = formats[parts[1]]
        assert not [variable for variable in LEAKY_VARIABLES if variable in text + " "], text
        assert "$uri" in text  # the path, without its query
    assert not re.search(r"access_log[^;]*\bcombined\b", nginx)
    # the error log quotes whole requests (with their query): only critical lines
    assert re.findall(r"error_log\s+\S+\s+(\w+);", server) == ["crit"]


def test_the_proxy_sets_the_client_address_and_the_app_trusts_one_hop(nginx, resolved):
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    assert "$proxy_add_x_forwarded_for" not in nginx  # appending would keep a client's own entries
    assert resolved["services"]["app"]["environment"]["TRUSTED_PROXY_COUNT"] == "1"


def test_the_stack_needs_its_own_field_encryption_key():
    done = _config(SECRET_KEY="compose-config-check-0123456789abcdef")
    assert done.returncode != 0
    assert "FIELD_ENCRYPTION_KEY" in done.stderr
