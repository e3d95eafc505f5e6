"""Org API keys reach only what their caller may read (§5): another caller's uploads cannot be sent,
a limited key sees no other specialist's spend or artifacts, a member key no private session's
artifacts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing.models import LedgerEntry
from chat.models import Artifact, Attachment, ChatSession
from orgs.models import Role
from tests.conftest import client_for, make_specialist
from tests.orgs.test_api_key_auth import key_client, new_key
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def _upload(client, name, content, **extra):
    return client.post(
        "/api/chat/upload",
        {"file": SimpleUploadedFile(name, content, "text/plain"), **extra},
        format="multipart",
    )


# --- A. attachments of another caller ---------------------------------------------------------


def test_member_key_cannot_attach_another_members_unsent_upload(org, owner, member):
    spec = make_specialist(org)
    up = _upload(client_for(member), "salary.txt", b"the CEO earns 1,000,000")
    assert up.status_code == 201, up.content
    att_id = up.json()["id"]
    key = key_client(new_key(org, role=Role.MEMBER))
    r = key.post(
        "/api/chat/async",
        {"specialistId": str(spec.pk), "message": "summarise my file", "attachmentIds": [att_id]},
        format="json",
    )
    # contract (§1 Tenancy, §5 member key reads only what it started): 400 validation_error naming attachmentIds
    stolen = Attachment.all_orgs.get(pk=att_id)
    assert r.status_code == 400, (r.status_code, r.content, "attachment now in session", stolen.session_id)


def test_member_key_cannot_attach_a_file_of_the_owners_private_session(org, owner):
    spec = make_specialist(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=spec, created_by=owner, title="private")
    up = _upload(client_for(owner), "secret.txt", b"board minutes", sessionId=str(session.pk))
    assert up.status_code == 201, up.content
    key = key_client(new_key(org, role=Role.MEMBER))
    r = key.post(
        "/api/chat/async",
        {"specialistId": str(spec.pk), "message": "what does it say", "attachmentIds": [up.json()["id"]]},
        format="json",
    )
    assert r.status_code == 400, (r.status_code, r.content)


def test_limited_key_cannot_attach_file_of_other_specialists_session(org, owner):
    mine = make_specialist(org, name="Mine")
    other = make_specialist(org, name="Other")
    session = ChatSession.all_orgs.create(organization=org, specialist=other, created_by=owner, title="o")
    up = _upload(client_for(owner), "o.txt", b"other specialist data", sessionId=str(session.pk))
    key = key_client(new_key(org, role=Role.ADMIN, specialist_ids=[mine.pk]))
    r = key.post(
        "/api/chat/async",
        {"specialistId": str(mine.pk), "message": "read", "attachmentIds": [up.json()["id"]]},
        format="json",
    )
    assert r.status_code == 400, (r.status_code, r.content)


# --- B. capacity reveals other specialists to a limited key ----------------------------------


def test_limited_key_capacity_does_not_show_other_specialists(org, owner):
    mine = make_specialist(org, name="Mine")
    other = make_specialist(org, name="Hidden Specialist")
    LedgerEntry.all_orgs.create(
        organization=org,
        kind=LedgerEntry.Kind.USAGE,
        amount=Decimal("-5"),
        balance_after=Decimal("95"),
        specialist_id=other.pk,
        specialist_name=other.name,
        model="gpt-4o-mini",
        description="x",
    ) if False else None
    from billing.services import metering  # noqa: F401

    _usage(org, other, Decimal("5"))
    key = key_client(new_key(org, role=Role.ADMIN, specialist_ids=[mine.pk]))
    assert key.get(f"/specialists/{other.pk}").status_code == 404
    body = key.get("/billing/capacity").json()
    shown = [row.get("specialistId") for row in body["bySpecialist"]]
    assert str(other.pk) not in shown, body


def _usage(org, specialist, credits, **extra):
    fields = {f.name for f in LedgerEntry._meta.get_fields()}
    values = {
        "organization": org,
        "kind": LedgerEntry.Kind.USAGE,
        "amount": -credits,
        "specialist_id": specialist.pk,
        "specialist_name": specialist.name,
        "model": "gpt-4o-mini",
        "description": "call",
        "input_tokens": 10,
        "output_tokens": 10,
    }
    if "balance_after" in fields:
        values["balance_after"] = Decimal("0")
    values.update(extra)
    return LedgerEntry.all_orgs.create(**{k: v for k, v in values.items() if k in fields or k.endswith("_id")})


# --- E. artifacts --------------------------------------------------------------------------------


def test_limited_key_does_not_see_artifacts_of_other_specialists(org, owner):
    mine = make_specialist(org, name="Mine")
    other = make_specialist(org, name="Other")
    ws = Workspace.all_orgs.create(organization=org, name="W", created_by=owner)
    session = ChatSession.all_orgs.create(organization=org, specialist=other, created_by=owner, title="o", workspace=ws)
    Artifact.all_orgs.create(
        organization=org, workspace=ws, title="plan", content="secret plan", session=session, specialist=other
    )
    key = key_client(new_key(org, role=Role.ADMIN, specialist_ids=[mine.pk]))
    r = key.get(f"/workspaces/{ws.pk}/artifacts")
    assert r.status_code == 200, r.content
    assert r.json()["count"] == 0, r.json()


def test_member_key_does_not_see_artifacts_of_the_owners_private_session(org, owner):
    spec = make_specialist(org)
    ws = Workspace.all_orgs.create(organization=org, name="W", created_by=owner)
    session = ChatSession.all_orgs.create(organization=org, specialist=spec, created_by=owner, title="o", workspace=ws)
    Artifact.all_orgs.create(
        organization=org, workspace=ws, title="plan", content="secret", session=session, specialist=spec
    )
    key = key_client(new_key(org, role=Role.MEMBER))
    assert key.get(f"/api/chat/sessions/{session.pk}").status_code == 404
    r = key.get(f"/workspaces/{ws.pk}/artifacts")
    assert r.json()["count"] == 0, r.json()
