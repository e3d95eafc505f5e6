"""No secret leaves the server where it does not belong: planted secrets (a password, an MCP
credential, an invitation and a password-reset token) never appear in an API response other than
the one that hands them out, in any log line (every logger, at DEBUG), or on any admin page."""

from __future__ import annotations

import logging
import re
import uuid

import httpx
import pytest
from django.contrib import admin
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db


def _token_from(message) -> str:
    return re.search(r"Token: (\S+)", message.body).group(1)


def test_planted_secrets_stay_out_of_responses_logs_and_the_admin(
    caplog, mcp_server, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex[:10]
    password = f"Planted-Passw0rd-{tag}"
    mcp_token = f"planted-mcp-token-{tag}"
    responses = []

    public = client_for()
    registered = public.post(
        "/register",
        {"email": f"owner-{tag}@example.com", "password": password, "name": "Owner", "organizationName": "Secrets"},
        format="json",
    )
    assert registered.status_code == 201, registered.content
    org_id = registered.json()["organization"]["id"]
    login = public.post("/auth/login", {"email": f"owner-{tag}@example.com", "password": password}, format="json")
    responses.append(login)
    owner = client_for()
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['accessToken']}")

    created = owner.post(
        f"/orgs/{org_id}/mcps",
        {
            "name": "Tools",
            "url": mcp_server.url("streamable_http"),
            "transport": "streamable_http",
            "authType": "bearer",
            "token": mcp_token,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    responses += [created, owner.post(f"/orgs/{org_id}/mcps/{created.json()['id']}/sync")]
    assert mcp_server.server.seen_headers[-1].get("authorization") == f"Bearer {mcp_token}"  # it was used
    # credentials in the URL itself (userinfo and a query value): the HTTP client logs every request's
    # URL, and the SDK its endpoint at DEBUG
    url_password, url_key = f"planted-url-password-{tag}", f"planted-url-key-{tag}"
    keyed_url = mcp_server.url("streamable_http").replace("://", f"://ops:{url_password}@", 1) + f"?api_key={url_key}"
    keyed = owner.post(
        f"/orgs/{org_id}/mcps", {"name": "Keyed", "url": keyed_url, "transport": "streamable_http"}, format="json"
    )
    assert keyed.status_code == 201, keyed.content
    keyed_sync = owner.post(f"/orgs/{org_id}/mcps/{keyed.json()['id']}/sync")
    assert keyed_sync.status_code == 200, keyed_sync.content
    responses += [keyed, keyed_sync]
    responses += [owner.get(f"/orgs/{org_id}/mcps"), owner.get(f"/orgs/{org_id}/mcps/{created.json()['id']}")]

    with django_capture_on_commit_callbacks(execute=True):  # the emails go out after commit
        invited = owner.post("/users/invite", {"email": f"new-{tag}@example.com", "role": "member"}, format="json")
    responses.append(invited)
    invitation = _token_from(mail.outbox[-1])
    with django_capture_on_commit_callbacks(execute=True):
        responses.append(public.post("/auth/password-reset", {"email": f"owner-{tag}@example.com"}, format="json"))
    reset = _token_from(mail.outbox[-1])
    responses += [owner.get("/users"), owner.get("/users/me"), owner.get("/billing/credits/usage")]
    for wrong in (invitation[:-1] + "x", reset[:-1] + "x"):  # failures are logged too
        responses.append(public.post("/auth/accept-invite", {"token": wrong, "password": password, "name": "N"}))

    secrets = {
        "password": password,
        "MCP token": mcp_token,
        "MCP URL password": url_password,
        "MCP URL query value": url_key,
        "invitation": invitation,
        "reset token": reset,
    }

    staff = make_user(is_staff=True)
    staff.is_superuser = True
    staff.save()
    browser = Client()
    browser.force_login(staff)
    pages = []
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        listing = browser.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert listing.status_code == 200, (meta.label, listing.status_code)
        pages.append((f"{meta.label} list", listing.content.decode()))
        for obj in model_admin.get_queryset(listing.wsgi_request)[:3]:
            change = browser.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))
            pages.append((f"{meta.label} {obj.pk}", change.content.decode()))

    logged = "\n".join(f"{record.name}: {record.getMessage()} {record.args!r}" for record in caplog.records)
    assert len(caplog.records) > 0
    assert "/mcp?api_key=***" in logged  # the keyed URL was logged, masked
    for name, secret in secrets.items():
        for response in responses:
            assert secret not in response.content.decode(), (name, response.wsgi_request.path)
        assert secret not in logged, name
        for page, html in pages:
            assert secret not in html, (name, page)
    assert any("mcps" in page for page, _ in pages)


@pytest.mark.django_db(transaction=True)
def test_planted_secrets_stay_out_of_the_output_of_a_server_and_a_worker(
    fake_llm, mcp_server, bundled_data, django_db_blocker
):
    """The same, for real processes at DEBUG: everything a Daphne server and a db_worker print
    (their logs, stdout and stderr) after turns that used each secret — a password at login (and at
    a failed one), access and refresh tokens (rotated, then revoked), the provider's API key and an
    MCP bearer token (sent by the server at sync and in a turn's tool call, and by the worker in an
    async turn's)."""
    from billing.models import LedgerEntry
    from chat.models import Message
    from mcps.models import Connection
    from tests.chat.test_stream_e2e import parse_sse
    from tests.conftest import make_specialist
    from tests.fakes.llm_server import Scenario
    from tests.servers import Daphne, redis_url_for_tests, run_worker_batch, server_env

    tag = uuid.uuid4().hex[:10]
    password = f"Planted-Passw0rd-{tag}"
    mcp_token = f"planted-mcp-token-{tag}"
    api_key = f"sk-planted-api-key-{tag}"
    env = server_env(
        {
            "LOG_LEVEL": "DEBUG",
            "OPENAI_BASE_URL": f"{fake_llm.url}/v1",
            "OPENAI_API_KEY": api_key,
            "REDIS_URL": redis_url_for_tests(),
        }
    )
    with django_db_blocker.unblock():
        server = Daphne(env)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            email = f"owner-{tag}@example.com"
            registered = http.post(
                "/register",
                json={"email": email, "password": password, "name": "Owner", "organizationName": "Secrets"},
            )
            assert registered.status_code == 201, registered.text
            org_id = registered.json()["organization"]["id"]
            assert http.post("/auth/login", json={"email": email, "password": password + "x"}).status_code == 401
            wrong_user = http.post("/auth/login", json={"email": f"nobody-{tag}@example.com", "password": password})
            assert wrong_user.status_code == 401
            login = http.post("/auth/login", json={"email": email, "password": password}).json()
            first_refresh = login["refreshToken"]
            rotated = http.post("/auth/refresh", json={"refreshToken": first_refresh}).json()
            assert http.post("/auth/refresh", json={"refreshToken": first_refresh}).status_code == 401  # reused
            access, refresh = rotated["accessToken"], rotated["refreshToken"]
            http.headers["authorization"] = f"Bearer {access}"
            created = http.post(
                f"/orgs/{org_id}/mcps",
                json={
                    "name": "Tools",
                    "url": mcp_server.url("streamable_http"),
                    "transport": "streamable_http",
                    "authType": "bearer",
                    "token": mcp_token,
                },
            )
            assert created.status_code == 201, created.text
            assert http.post(f"/orgs/{org_id}/mcps/{created.json()['id']}/sync").status_code == 200
            assert mcp_server.server.seen_headers[-1].get("authorization") == f"Bearer {mcp_token}"
            connection = Connection.all_orgs.get(pk=created.json()["id"])
            specialist = make_specialist(connection.organization, model="gpt-4o-mini")
            specialist.tools.set(connection.tools.filter(name="add"))

            def tool_round(call: str) -> None:
                fake_llm.script(
                    Scenario(chunks=[], tool_calls=[{"id": call, "name": "add", "arguments": {"a": 1, "b": 2}}]),
                    Scenario(chunks=["3"]),
                )

            tool_round("c1")
            streamed = http.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "add"})
            assert streamed.status_code == 200, streamed.text
            assert next(data for _, name, data in parse_sse(streamed.text) if name == "tool_result")["result"] == "3"
            tool_round("c2")
            queued = http.post("/api/chat/async", json={"specialistId": str(specialist.pk), "message": "add later"})
            assert queued.status_code == 202, queued.text
            worker = run_worker_batch(env)
            assert worker.returncode == 0, worker.stderr
            done = Message.all_orgs.get(pk=queued.json()["messageId"])
            assert (done.status, done.tool_calls[0]["result"]) == ("completed", "3")  # the worker used the token
            assert http.post("/auth/logout", json={"refreshToken": refresh}).status_code == 204
    finally:
        server.stop()
    assert {headers.get("authorization") for headers in fake_llm.headers} == {f"Bearer {api_key}"}  # both used it
    assert len(fake_llm.headers) == 4
    assert LedgerEntry.all_orgs.filter(kind="usage", organization_id=org_id).count() == 4

    outputs = {"server log": server.log.read_text(), "worker output": worker.stdout + worker.stderr}
    # DEBUG output of both, each showing what it did with the secrets: there was something to leak into
    for line in (
        '"POST /auth/login" 200',
        '"POST /auth/refresh" 200',
        "/v1/chat/completions",
        "Sending client message",
    ):
        assert line in outputs["server log"], line
    for line in ("chat.jobs.run_queued_turn", "/v1/chat/completions", "Sending client message"):
        assert line in outputs["worker output"], line
    secrets = {
        "password": password,
        "API key": api_key,
        "MCP token": mcp_token,
        "access token": access,
        "first refresh token": first_refresh,
        "rotated refresh token": refresh,
    }
    for name, secret in secrets.items():
        for where, text in outputs.items():
            assert secret not in text, (name, where)


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
@pytest.mark.parametrize("name", ["httpx2", "httpx", "mcp.client.streamable_http", "mcp.client.sse", "client"])
def test_an_mcp_urls_credentials_reach_no_log_line_at_any_level(caplog, name, level):
    """Whatever the level a line is written at, by the HTTP clients or the MCP SDK: its URLs have no
    userinfo and no query value, in the message and in its traceback."""
    caplog.set_level(logging.DEBUG)
    url = "http://ops:planted-pw@mcp.example.com/mcp?api_key=planted-key&flag"
    try:
        raise ValueError(f"Client error for url {url}")
    except ValueError:
        logging.getLogger(name).log(level, 'HTTP Request: %s %s "%s"', "POST", url, "HTTP/1.1 200 OK", exc_info=True)
    text = caplog.text
    if not caplog.records:  # a level below the logger's own (httpcore's DEBUG): nothing written at all
        assert level < logging.WARNING
        return
    assert "http://mcp.example.com/mcp?api_key=***&***" in text
    assert "planted" not in text
