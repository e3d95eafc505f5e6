from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import assert_problem, client_for

pytestmark = pytest.mark.django_db


def test_unknown_path_is_problem_404(anon):
    assert_problem(anon.get("/nope/nothing"), 404, "not_found")


def test_wrong_method_is_problem_405(anon):
    body = assert_problem(anon.get("/auth/login"), 405, "method_not_allowed")
    assert "GET" in body["detail"]


def test_unsupported_media_type(anon):
    response = anon.post("/auth/login", "x=1", content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")


def test_health(anon):
    response = anon.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channelLayer": "ok"}


def test_health_reports_a_broken_channel_layer(anon, settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    channel_layers.backends.clear()
    try:
        response = anon.get("/health")
    finally:
        channel_layers.backends.clear()
    body = assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"]
    assert body["channelLayer"] == "error"
    assert response.json()["database"] == "ok"


def test_schema_is_public_and_camel_case(anon):
    response = anon.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert "/auth/login" in schema["paths"]
    assert "/billing/credits/balance" in schema["paths"]
    login = schema["components"]["schemas"]["TokenResponse"]["properties"]
    assert {"accessToken", "refreshToken", "tokenType", "expiresIn", "user"} <= set(login)
    users = schema["paths"]["/users"]["get"]
    assert any(p["name"] == "X-Org-Id" for p in users["parameters"])
    assert "401" in users["responses"]
    assert "Problem" in schema["components"]["schemas"]


def test_docs_are_served_without_cdn(anon):
    for path in ("/api/docs/", "/api/redoc/"):
        response = Client().get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert "cdn.jsdelivr" not in html
        assert "unpkg.com" not in html
        assert "drf_spectacular_sidecar" in html or "static" in html or "/api/redoc/redoc.standalone.js" in html
    bundle = Client().get("/api/redoc/redoc.standalone.js")  # the bundle, with no vendor URL left in it
    assert bundle.status_code == 200
    assert bundle["Content-Type"].startswith("application/javascript")
    assert b"cdn.redoc.ly" not in bundle.content
    assert len(bundle.content) > 100_000


def test_trailing_slash_is_accepted(owner):
    client = client_for(owner)
    assert client.get("/users/me/").status_code == 200
    assert client.get("/users/me").status_code == 200


def test_page_size_is_clamped_to_100(owner, org):
    from accounts.models import User
    from orgs.models import Membership

    users = User.objects.bulk_create([User(email=f"bulk{i}@example.com", name=f"B{i}") for i in range(105)])
    Membership.all_orgs.bulk_create([Membership(organization=org, user=u, role="member") for u in users])
    client = client_for(owner)
    body = client.get("/users?pageSize=1000").json()
    assert body["count"] == 106
    assert len(body["results"]) == 100
    assert body["next"]
    assert len(client.get("/users?pageSize=5").json()["results"]) == 5
    assert len(client.get("/users").json()["results"]) == 20


def test_cors_preflight(anon, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = anon.options(
        "/auth/login", HTTP_ORIGIN="https://app.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    allowed = {header.strip().lower() for header in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-org-id", "idempotency-key"} <= allowed
    assert "DELETE" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Max-Age"] == "600"
    denied = anon.options("/auth/login", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in denied
    # answers (errors included) name the origin too, so that a browser can read the problem
    failed = anon.post("/auth/login", {}, format="json", HTTP_ORIGIN="https://app.example.com")
    assert failed.status_code == 400
    assert failed["Access-Control-Allow-Origin"] == "https://app.example.com"


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("name", ["django.tasks", "django.request", "django_tasks_db", "chat.pipeline"])
def test_every_log_line_is_printed_once(settings, debug, name):
    """Under DEBUG (as run.sh runs) Django's own console handler used to print worker and error lines
    a second time."""
    import logging

    from django.utils.log import configure_logging

    settings.DEBUG = debug
    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    record = logging.LogRecord(name, logging.ERROR, __file__, 1, "boom", None, None)
    handlers = []
    logger = logging.getLogger(name)
    while logger is not None:
        handlers += [h for h in logger.handlers if h.filter(record) and record.levelno >= h.level]
        logger = logger.parent if logger.propagate else None
    assert len(handlers) == 1, handlers
