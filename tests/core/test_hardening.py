"""What real clients, a fuzzer and hostile input do to the API: every answer is the documented
status with a problem+json body, never a 5xx, never an empty 4xx."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.services import issue_tokens
from specialists.models import Specialist
from tests.conftest import assert_problem, client_for, make_org, make_specialist, owner_of

pytestmark = pytest.mark.django_db

BIG = 30 * 1024 * 1024


def _problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def _routes(patterns=None, prefix=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and not str(entry.pattern).startswith("^"):
            yield prefix + str(entry.pattern), entry.callback


def _concrete(route: str) -> str:
    path = "/" + route
    for name in ("pk", "tool_id", "org_id", "file_id"):
        path = path.replace(f"<uuid:{name}>", str(uuid.uuid4()))
    return path


# --- through a real server, the way ordinary clients talk ---------------------------------------


@pytest.fixture
def live(daphne_server, bundled_data, transactional_db):
    org = make_org(name="Live")
    owner = owner_of(org)
    token = issue_tokens(user=owner).access
    client = httpx.Client(base_url=daphne_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    yield org, owner, client
    client.close()


@pytest.mark.parametrize(
    "accept",
    [
        "text/event-stream",
        "*/*",
        None,
        "text/event-stream, application/json;q=0.5",
        "text/event-stream; charset=utf-8",
        "text/*;q=0.8",
    ],
)
def test_the_stream_streams_for_what_sse_clients_send(live, accept):
    org, _, client = live
    specialist = make_specialist(org)
    headers = {"Accept": accept} if accept else {}
    if accept is None:
        client.headers.pop("Accept", None)
    with client.stream(
        "POST",
        "/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": "hello"},
        headers=headers,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    assert "event: session" in text
    assert "event: done" in text


def test_the_stream_refuses_only_a_client_that_accepts_none_of_its_answers(live):
    org, _, client = live
    specialist = make_specialist(org)
    body = {"specialistId": str(specialist.pk), "message": "hello"}
    _problem(client.post("/api/chat/stream", json=body, headers={"Accept": "text/html"}), 406, "not_acceptable")
    _problem(
        client.post("/api/chat/stream", json=body, headers={"Accept": "text/event-stream;q=0"}), 406, "not_acceptable"
    )
    # a problem is acceptable to a client that asks for problems: the refusal (409) still answers
    Specialist.all_orgs.filter(pk=specialist.pk).update(status=Specialist.Status.PAUSED)
    _problem(
        client.post("/api/chat/stream", json=body, headers={"Accept": "application/problem+json"}),
        409,
        "specialist_inactive",
    )


def test_bodies_over_the_limit_are_413_on_json_multipart_and_public_routes(live):
    org, _, client = live
    _problem(
        client.post(
            "/specialists", content=b'{"name": "' + b"x" * BIG + b'"}', headers={"content-type": "application/json"}
        ),
        413,
        "request_too_large",
    )
    _problem(
        client.post("/api/chat/upload", files={"file": ("big.txt", b"x" * BIG, "text/plain")}), 413, "file_too_large"
    )
    _problem(  # multipart to an endpoint that takes no file
        client.post("/specialists", files={"file": ("big.txt", b"x" * BIG, "text/plain")}), 413, "request_too_large"
    )
    _problem(
        httpx.post(f"{client.base_url}/auth/login", content=b"x" * BIG, headers={"content-type": "application/json"}),
        413,
        "request_too_large",
    )
    # nothing was created, and the server still serves
    assert not Specialist.all_orgs.filter(organization=org).exists()
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("kind", ["multipart", "form"])
def test_empty_form_bodies_to_json_endpoints_are_problems(live, kind):
    """Twisted used to answer an empty multipart body itself: 400 with no body and no Content-Type."""
    org, _, client = live
    if kind == "multipart":
        headers = {"content-type": "multipart/form-data; boundary=xyz"}
        content = b"--xyz--\r\n"
    else:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        content = b""
    for path in (
        "/billing/circuit/toggle",
        "/auth/password-reset",
        f"/orgs/{org.pk}/mcps",
        "/billing/credits/grant",
        "/specialists",
        "/workspaces",
        "/tasks",
    ):
        response = client.post(path, content=content, headers=headers)
        assert 400 <= response.status_code < 500 or response.status_code == 200, (path, response.status_code)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), path
            assert response.json()["code"], path
    garbage = client.post(
        "/specialists", content=b"--xyz\r\nnot a part", headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    _problem(garbage, 400, "validation_error")


def test_options_on_a_detail_route_through_the_server(live):
    org, _, client = live
    specialist = make_specialist(org)
    for path in (f"/specialists/{specialist.pk}", f"/specialists/{uuid.uuid4()}", "/tasks", f"/orgs/{org.pk}/mcps"):
        response = client.options(path)
        assert response.status_code == 200, (path, response.text)
        assert "POST" in response.headers["allow"] or "PUT" in response.headers["allow"]


# --- every route, through the test client ----------------------------------------------------------


def test_options_on_every_route_is_never_a_server_error(owner, org):
    client = client_for(owner)
    checked = []
    for route, _ in _routes():
        if route.startswith("admin/"):
            continue
        response = client.options(_concrete(route))
        checked.append(route)
        assert response.status_code < 500, (route, response.content)
        if response.status_code >= 400:
            assert response["Content-Type"].startswith("application/problem+json"), route
    assert len(checked) > 40


def test_every_route_refuses_a_body_over_the_limit(owner, org, settings, anon):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    client = client_for(owner)
    body = json.dumps({"name": "x" * 4096})
    for route, _ in [*_routes(), ("admin/login/", None)]:
        path = _concrete(route)
        for method in ("post", "put", "patch"):
            response = getattr(client, method)(path, body, content_type="application/json")
            assert_problem(response, 413, "request_too_large")
        response = anon.post(path, {"file": ("a.txt", b"y" * 4096)}, format="multipart")
        # a multipart body to an upload endpoint is a file too large (it says the limit for a file)
        upload = route.rstrip("/") in ("api/chat/upload", "workspaces/<uuid:pk>/files")
        assert_problem(response, 413, "file_too_large" if upload else "request_too_large")


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/specialists/not-a-uuid", "/orgs/x/y/z/", "/api/chat/"])
def test_unknown_paths_are_problem_json_in_development_too(owner, settings, path):
    settings.DEBUG = True
    client = client_for(owner)
    for method in ("get", "post", "delete"):
        assert_problem(getattr(client, method)(path), 404, "not_found")


LISTS = [
    "/billing/credits/usage",
    "/billing/alerts",
    "/billing/model-rates",
    "/billing/packages",
    "/specialists",
    "/api/chat/sessions",
    "/users",
    "/orgs",
    "/mcp/catalog",
    "/workspaces",
    "/projects",
    "/tasks",
]


@pytest.mark.parametrize("path", LISTS)
def test_list_paging_is_clamped_or_a_validation_error_naming_the_parameter(owner, org, bundled_data, path):
    client = client_for(owner)
    response = client.get(path, {"pageSize": "30209239"})
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) <= 100
    for page in ("99999999999999999999", "0", "-1", "abc", "1.5", "5000", "²", "①", "٣"):
        body = assert_problem(client.get(path, {"page": page}), 400, "validation_error")
        assert list(body["errors"]) == ["page"], body
    for size in ("0", "²", "①", "-5", "x"):  # an odd size: the default
        assert client.get(path, {"page": "1", "pageSize": size}).status_code == 200


def test_dates_that_cannot_be_stored_are_clamped_to_utc_or_named(owner, org):
    client = client_for(owner)
    response = client.get("/billing/credits/usage", {"pageSize": "30209239", "from": "2584-12-14T00:55:10-20:24"})
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 0  # every entry is older than the year 2584
    assert client.get("/billing/credits/usage", {"to": "2584-12-14T00:55:10-20:24"}).json()["count"] == 1
    for value in ("2026-13-01", "9999-12-31T23:59:59-23:00", "2026-01-01T00:00:00+25:00", "yesterday"):
        body = assert_problem(client.get("/billing/credits/usage", {"from": value}), 400, "validation_error")
        assert "from" in body["errors"], body
    body = assert_problem(client.get("/tasks", {"dueBefore": "0000-01-01"}), 400, "validation_error")
    assert "dueBefore" in body["errors"]


def test_validation_errors_on_list_fields_are_flat_lists_of_strings(admin_user, org):
    client = client_for(admin_user)
    unknown = [str(uuid.uuid4()), "not-a-uuid"]
    body = assert_problem(
        client.post("/specialists", {"name": "A", "model": "local", "toolIds": unknown}, format="json"),
        400,
        "validation_error",
    )
    messages = body["errors"]["toolIds"]
    assert isinstance(messages, list), body
    assert all(isinstance(message, str) for message in messages), body
    assert any(message.startswith("item 0: ") for message in messages), messages
    assert any(message.startswith("item 1: ") for message in messages), messages
    body = assert_problem(
        client.post("/billing/alerts/acknowledge", {"alertIds": ["x", str(uuid.uuid4())]}, format="json"),
        400,
        "validation_error",
    )
    assert all(isinstance(m, str) for messages in body["errors"].values() for m in messages), body


def test_an_unreachable_mail_server_never_fails_the_request(
    admin_user, org, settings, caplog, django_capture_on_commit_callbacks
):
    """Invitation and reset emails go out after commit; a mail outage is logged, not a 500."""
    from tests.fakes.llm_server import free_port

    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    client = client_for(admin_user)
    with caplog.at_level("ERROR", logger="core.mail"), django_capture_on_commit_callbacks(execute=True):
        invited = client.post("/users/invite", {"email": "new@example.com", "role": "member"}, format="json")
        reset = client.post("/auth/password-reset", {"email": admin_user.email}, format="json")
    assert invited.status_code == 201, invited.content
    assert reset.status_code == 202
    assert len([r for r in caplog.records if r.name == "core.mail"]) == 2


def test_deeply_nested_json_is_a_validation_error_on_json_routes(owner, org, anon):
    client = client_for(owner)
    body = '{"name": ' + "[" * 3000 + "]" * 3000 + "}"
    for path in ("/workspaces", "/specialists", "/tasks"):
        assert_problem(client.post(path, body, content_type="application/json"), 400, "validation_error")
    assert_problem(anon.post("/auth/login", body, content_type="application/json"), 400, "validation_error")


def test_a_malformed_bearer_header_is_a_clean_401(anon):
    for header in ("Bearer", "Bearer a b", "Bearer not-a-jwt"):
        body = assert_problem(anon.get("/users/me", HTTP_AUTHORIZATION=header), 401, "token_not_valid")
        assert "ErrorDetail" not in body["detail"], body
        assert "{" not in body["detail"], body


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_the_schema_and_docs_answer_errors_as_problem_json(anon, path):
    assert_problem(anon.post(path), 405, "method_not_allowed")
    assert_problem(anon.delete(path), 405, "method_not_allowed")


def test_the_schema_in_an_unknown_format_is_a_problem(anon):
    assert_problem(anon.get("/api/schema/", {"format": "bogus"}), 404, "not_found")


def test_pages_made_before_the_api_are_problems_in_development_too(settings, anon):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = ["testserver"]
    body = assert_problem(anon.get("/health", HTTP_HOST="evil.example"), 400, "validation_error")
    assert body["detail"]
    response = anon.get("/admin")  # the admin keeps its own pages (and its address without the slash)
    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_chunked_bodies_are_read_and_held_to_the_limit(live):
    """Without Content-Length (Transfer-Encoding: chunked) a body used to be read as empty, and
    never measured."""
    _, _, client = live

    def chunks(data: bytes, size: int = 65536):
        for start in range(0, len(data), size):
            yield data[start : start + size]

    created = client.post(
        "/workspaces", content=chunks(b'{"name": "chunked"}'), headers={"content-type": "application/json"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "chunked"
    big = b'{"name": "' + b"x" * BIG + b'"}'
    _problem(
        client.post("/workspaces", content=chunks(big), headers={"content-type": "application/json"}),
        413,
        "request_too_large",
    )
