"""The back office neither leaks secrets nor bypasses what the API enforces."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.db.models import ProtectedError
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.services import issue_tokens
from billing.models import LedgerEntry
from chat.models import ChatSession
from chat.tools import tool_plan
from mcps.client import call_tool_by_id
from mcps.models import Connection, Tool
from orgs.models import Membership
from specialists.models import Specialist
from tests.conftest import make_specialist, make_user, owner_of

pytestmark = pytest.mark.django_db


def _tool(org, name: str = "add") -> Tool:
    connection = Connection.all_orgs.create(
        organization=org, name=f"{org.name} server", url="https://mcp.example.com/mcp"
    )
    return Tool.all_orgs.create(organization=org, connection=connection, name=name)


def test_no_refresh_token_is_readable_in_the_admin(operator, owner):
    refresh = issue_tokens(user=owner).refresh
    token = OutstandingToken.objects.get(user=owner)
    for path in (
        "/admin/token_blacklist/outstandingtoken/",
        f"/admin/token_blacklist/outstandingtoken/{token.pk}/change/",
        "/admin/token_blacklist/outstandingtoken/?q=" + owner.email,
    ):
        response = operator.get(path)
        assert response.status_code == 200, path
        assert refresh not in response.content.decode(), path
    assert operator.get("/admin/token_blacklist/blacklistedtoken/").status_code == 404
    # nor guessable: filtering on the token's text is refused, however the guess is written
    for lookup in ("token__startswith", "token", "token__contains", "token__regex"):
        response = operator.get(f"/admin/token_blacklist/outstandingtoken/?{lookup}={refresh[:20]}")
        assert response.status_code == 400, lookup
    revoke = {"action": "revoke", "_selected_action": [token.pk]}
    response = operator.post("/admin/token_blacklist/outstandingtoken/", revoke)
    assert response.status_code == 200  # the reason first, on a page that shows no token either
    assert refresh not in response.content.decode()
    response = operator.post("/admin/token_blacklist/outstandingtoken/", {**revoke, "apply": "1", "reason": "Lost"})
    assert response.status_code == 302
    assert hasattr(OutstandingToken.objects.get(pk=token.pk), "blacklistedtoken")


def test_the_admin_offers_and_accepts_only_the_specialists_own_tools(operator, org, other_org):
    specialist = make_specialist(org)
    own, foreign = _tool(org), _tool(other_org)
    page = operator.get(f"/admin/specialists/specialist/{specialist.pk}/change/").content.decode()
    assert str(own.pk) in page
    assert str(foreign.pk) not in page
    form = {
        "name": "Ada",
        "title": "Analyst",
        "description": "",
        "instructions": "Be precise.",
        "model": "local",
        "temperature": "0.7",
        "max_output_tokens": "500",
        "status": "active",
        "tools": [str(foreign.pk)],
        "audit_reason": "Give it the org's tools",
    }
    response = operator.post(f"/admin/specialists/specialist/{specialist.pk}/change/", form)
    assert response.status_code == 200  # the form again, with an error
    assert not specialist.tools.exists()
    form["tools"] = [str(own.pk)]
    assert operator.post(f"/admin/specialists/specialist/{specialist.pk}/change/", form).status_code == 302
    assert list(specialist.tools.all()) == [own]


@pytest.mark.django_db(transaction=True)
def test_the_pipeline_never_runs_another_orgs_tool_whatever_wrote_the_row(org, other_org):
    specialist = make_specialist(org)
    own, foreign = _tool(org, "own"), _tool(other_org, "foreign")
    specialist.tools.add(own, foreign)  # as a direct write could
    specs, bindings = tool_plan(specialist)
    assert [spec.name for spec in specs] == ["own"]
    assert {binding.org_id for binding in bindings.values()} == {org.pk}
    result = async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=foreign.pk, arguments={})
    assert result == ("This tool no longer exists.", True)


def test_the_admin_refuses_mcp_urls_the_api_refuses(operator, org, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    form = {
        "organization": str(org.pk),
        "name": "metadata",
        "catalog_key": "",
        "transport": "streamable_http",
        "url": "http://169.254.169.254/latest/meta-data/",
        "auth_type": "none",
        "enabled": "on",
        "tools-TOTAL_FORMS": "0",
        "tools-INITIAL_FORMS": "0",
        "audit_reason": "Their server",
    }
    response = operator.post("/admin/mcps/connection/add/", form)
    assert response.status_code == 200
    assert "is not allowed" in response.content.decode() or "errorlist" in response.content.decode()
    assert not Connection.all_orgs.filter(name="metadata").exists()
    connection = Connection.all_orgs.create(organization=org, name="ok", url="https://mcp.example.com/mcp")
    response = operator.post(f"/admin/mcps/connection/{connection.pk}/change/", {**form, "name": "ok"})
    assert response.status_code == 200
    connection.refresh_from_db()
    assert connection.url == "https://mcp.example.com/mcp"


def test_chat_history_is_read_only_in_the_admin(operator, org, other_org):
    specialist = make_specialist(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner_of(org), title="t")
    assert operator.get(f"/admin/chat/chatsession/{session.pk}/change/").status_code == 200  # readable
    response = operator.post(
        f"/admin/chat/chatsession/{session.pk}/change/",
        {"organization": str(other_org.pk), "specialist": str(make_specialist(other_org).pk), "title": "moved"},
    )
    assert response.status_code == 403
    session.refresh_from_db()
    assert (session.organization_id, session.title) == (org.pk, "t")
    assert operator.get("/admin/chat/chatsession/add/").status_code == 403


def test_an_organization_and_its_ledger_cannot_be_deleted(operator, org):
    assert LedgerEntry.all_orgs.filter(organization=org).exists()
    assert operator.get(f"/admin/orgs/organization/{org.pk}/delete/").status_code == 403
    response = operator.post(
        "/admin/orgs/organization/", {"action": "delete_selected", "_selected_action": [org.pk], "post": "yes"}
    )
    assert org.__class__.objects.filter(pk=org.pk).exists(), response.status_code
    Specialist.all_orgs.filter(organization=org).delete()
    with pytest.raises(ProtectedError):
        org.delete()
    assert LedgerEntry.all_orgs.filter(organization=org).exists()


def test_org_owned_records_stay_in_their_org_and_point_only_inside_it(operator, org, other_org):
    from tasks.models import Task
    from workspaces.models import Workspace

    owner = owner_of(org)
    workspace = Workspace.all_orgs.create(organization=org, name="W", created_by=owner)
    response = operator.post(
        f"/admin/workspaces/workspace/{workspace.pk}/change/",
        {
            "organization": str(other_org.pk),
            "name": "W",
            "description": "",
            "created_by": owner.pk,
            "audit_reason": "Tidy up",
            **_empty_inline(),
        },
    )
    assert response.status_code == 302  # saved, but the organization is not a field that changes
    workspace.refresh_from_db()
    assert workspace.organization_id == org.pk
    foreign = make_specialist(other_org)
    task = Task.all_orgs.create(organization=org, title="T", created_by=owner)
    form = {
        "title": "T",
        "description": "",
        "status": "todo",
        "priority": "medium",
        "assignee_specialist": str(foreign.pk),
        "created_by": owner.pk,
        "result": "",
        "error": "",
        "audit_reason": "Reassign",
    }
    response = operator.post(f"/admin/tasks/task/{task.pk}/change/", form)
    assert response.status_code == 200  # the form again: another org's specialist is refused
    task.refresh_from_db()
    assert task.assignee_specialist_id is None
    stranger = make_user()
    response = operator.post(
        f"/admin/tasks/task/{task.pk}/change/", {**form, "assignee_specialist": "", "assignee_user": stranger.pk}
    )
    assert response.status_code == 200  # and so is someone who is not a member
    task.refresh_from_db()
    assert task.assignee_user_id is None


def _empty_inline() -> dict:
    return {"files-TOTAL_FORMS": "0", "files-INITIAL_FORMS": "0"}


def test_the_admin_keeps_every_org_owned(operator, org):
    membership = Membership.all_orgs.get(organization=org, role="owner")
    page = f"/admin/orgs/membership/{membership.pk}/change/"
    response = operator.post(
        page,
        {
            "role": "member",
            "status": "active",
            "joined_at_0": "2026-01-01",
            "joined_at_1": "00:00",
            "audit_reason": "Demote",
        },
    )
    assert response.status_code == 200
    membership.refresh_from_db()
    assert membership.role == "owner"
    assert operator.get(f"/admin/orgs/membership/{membership.pk}/delete/").status_code == 403
    operator.post(
        "/admin/orgs/membership/",
        {"action": "delete_selected", "_selected_action": [membership.pk], "post": "yes", "audit_reason": "Gone"},
    )
    assert Membership.all_orgs.filter(pk=membership.pk).exists()


def test_a_specialist_needs_an_active_model_in_the_admin(operator, org):
    specialist = make_specialist(org)
    form = {
        "name": "Ada",
        "title": "",
        "description": "",
        "instructions": "",
        "model": "no-such-model",
        "temperature": "0.7",
        "max_output_tokens": "500",
        "status": "active",
        "audit_reason": "New model",
    }
    assert operator.post(f"/admin/specialists/specialist/{specialist.pk}/change/", form).status_code == 200
    specialist.refresh_from_db()
    assert specialist.model == "local"
