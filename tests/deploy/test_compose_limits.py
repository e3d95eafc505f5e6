"""Behind the compose proxy, a body too large still gets the contract's answer: nginx's own limit is
above the app's (so the app answers up to it, with the exact limits), and above it nginx answers the
API's problem+json 413 itself, `file_too_large` on every upload route of the app (a 32 MiB upload),
`request_too_large` elsewhere, never its own HTML page. The config is read as Compose interpolates
it (Compose's own `config`)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from core.errors import problem
from core.middleware import _is_upload
from tests.deploy.test_compose import _docker_compose
from tests.servers import ROOT

MIB = 1024 * 1024
ENV = {
    "SECRET_KEY": "compose-config-check-0123456789abcdef0123456789",
    "FIELD_ENCRYPTION_KEY": "AexEQdCC6DLZg2K8sFM7bJhAdXn5h0DwP2JIWwqGrd4=",
    "PATH": "/usr/bin:/bin",
}


def _config(**env: str) -> dict:
    done = subprocess.run(
        [*_docker_compose(), "-f", str(ROOT / "compose.yaml"), "config", "--format", "json"],
        cwd=ROOT,
        env={**ENV, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _nginx(config: dict) -> str:
    return config["configs"]["nginx"]["content"].replace("$$", "$")  # as nginx reads it


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", size).groups()
    return int(number) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[unit.lower()]


def _answer(nginx: str, method: str, path: str) -> dict:
    """What nginx answers to a body over its limit: the map's code for this request, then the body of
    the 413 ``return`` for that code."""
    block = re.search(r'map "\$request_method \$uri" \$leancore_too_large \{(.*?)\}', nginx, re.S).group(1)
    code = re.search(r"default\s+(\w+);", block).group(1)
    for pattern, mapped in re.findall(r'"~(.*?)"\s+(\w+);', block):
        if re.search(pattern, f"{method} {path}"):
            code = mapped
            break
    bodies = [json.loads(text) for text in re.findall(r"return 413 '(.*?)';", nginx)]
    return next(body for body in bodies if body["code"] == code)


def _upload_routes() -> list[str]:
    """Every route of the app where a POST is an upload (its view's ``upload_actions``), as a path."""
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                cls = getattr(pattern.callback, "cls", None)
                actions = getattr(pattern.callback, "actions", None) or {"post": "post"}  # a viewset's, or a view's
                if actions.get("post") in getattr(cls, "upload_actions", ()):
                    route = prefix + str(pattern.pattern)
                    found.append("/" + re.sub(r"<uuid:\w+>", str(uuid.uuid4()), route).lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns, "")
    return [path for path in dict.fromkeys(found) if "<" not in path and "(" not in path]


@pytest.fixture(scope="module")
def config() -> dict:
    return _config()


def test_the_proxy_lets_the_app_answer_up_to_its_own_limit(config):
    nginx = _nginx(config)
    proxy_limit = _bytes(re.search(r"client_max_body_size (\w+);", nginx).group(1))
    upload_limit = int(config["services"]["app"]["environment"]["UPLOAD_MAX_BYTES"])
    request_limit = max(upload_limit * 2, 2_621_440)  # the app's REQUEST_MAX_BYTES unset (settings)
    assert "REQUEST_MAX_BYTES" not in config["services"]["app"]["environment"]
    assert proxy_limit > request_limit  # below nginx's limit, the app decides and states its limits
    assert "error_page 413 @too_large;" in nginx


@pytest.mark.django_db
def test_a_32_mib_upload_gets_file_too_large_from_the_proxy(config):
    nginx = _nginx(config)
    assert _bytes(re.search(r"client_max_body_size (\w+);", nginx).group(1)) < 32 * MIB  # nginx answers it
    routes = _upload_routes()
    assert {"/api/chat/upload"} <= set(routes)
    assert any(path.startswith("/workspaces/") and path.endswith("/files") for path in routes)
    upload_limit = config["services"]["app"]["environment"]["UPLOAD_MAX_BYTES"]
    for path in routes:
        assert _is_upload(RequestFactory().post(path, {"file": b""}))  # the app's own reading of the route
        body = _answer(nginx, "POST", path)
        expected = problem(413, "file_too_large", body["detail"])
        assert {key: body[key] for key in ("type", "title", "status", "code")} == {
            key: expected[key] for key in ("type", "title", "status", "code")
        }, path
        assert f"the limit for a file is {upload_limit} bytes" in body["detail"]
        assert body["requestId"] == "$request_id"  # nginx fills in its request id (also X-Request-Id)
    for method, path in (("POST", "/auth/login"), ("PUT", f"/workspaces/{uuid.uuid4()}"), ("GET", "/api/chat/upload")):
        body = _answer(nginx, method, path)
        assert (body["code"], body["type"]) == ("request_too_large", problem(413, "request_too_large", "")["type"])
    assert "add_header X-Request-Id $request_id always;" in nginx
    assert "default_type application/problem+json;" in nginx


def test_the_upload_limit_the_proxy_states_is_the_apps():
    config = _config(UPLOAD_MAX_BYTES="5242880")
    assert config["services"]["app"]["environment"]["UPLOAD_MAX_BYTES"] == "5242880"
    assert "the limit for a file is 5242880 bytes" in _answer(_nginx(config), "POST", "/api/chat/upload")["detail"]
