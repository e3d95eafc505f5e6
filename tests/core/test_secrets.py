"""No secret leaves the server where it does not belong: planted secrets (a password, an MCP
credential, an invitation and a password-reset token) never appear in an API response other than
the one that hands them out, in any log line (every logger, at DEBUG), or on any admin page."""

from __future__ import annotations

import logging
import re
import uuid

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

    secrets = {"password": password, "MCP token": mcp_token, "invitation": invitation, "reset token": reset}

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
    for name, secret in secrets.items():
        for response in responses:
            assert secret not in response.content.decode(), (name, response.wsgi_request.path)
        assert secret not in logged, name
        for page, html in pages:
            assert secret not in html, (name, page)
    assert any("mcps" in page for page, _ in pages)
