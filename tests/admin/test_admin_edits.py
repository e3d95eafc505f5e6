"""Form edits and deletes in the back office, through its real pages as a browser posts them: every
one asks for a reason, saves through the same services as the API (whose rules show as form errors),
and is in the audit trail (who, when, what, why, with old and new values) and the admin's history."""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from billing.models import CreditAccount, ModelRate
from mcps.models import Connection, Tool
from orgs.models import AuditEntry, Membership, Organization
from specialists.models import Specialist
from tasks.models import Task
from tests.conftest import add_member, make_specialist, make_user, owner_of
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

REASON = "audit_reason"


class _FormFields(HTMLParser):
    """What a browser would post from the admin's change form (its values as the page shows them)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form" and a.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form or ("name" not in a and tag in {"input", "select", "textarea"}):
            return
        if tag == "input" and a.get("type") not in {"submit", "button", "file", "image"}:
            if a.get("type") in {"checkbox", "radio"}:
                if "checked" in a:
                    self._add(a["name"], a.get("value") or "on")
            else:
                self._add(a["name"], a.get("value", ""))
        elif tag == "select":
            self._select = a["name"]
            self.data.setdefault(a["name"], [])
        elif tag == "option" and self._select and "selected" in a:
            self._add(self._select, a.get("value", ""))
        elif tag == "textarea":
            self._textarea = a["name"]
            self._add(a["name"], "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data[self._textarea][-1] = self.data[self._textarea][-1].removeprefix("\n")
            self._textarea = None


def form_of(client, url: str) -> dict[str, list[str] | str]:
    response = client.get(url)
    assert response.status_code == 200, url
    parser = _FormFields()
    parser.feed(response.content.decode())
    return {key: values if len(values) != 1 else values[0] for key, values in parser.data.items()}


def submit(client, page: str, **changes):
    """The page's form as shown, with ``changes``: what a browser posts."""
    data = {**form_of(client, page), **changes}
    return client.post(page, {key: value for key, value in data.items() if value is not None})


def errors_of(response) -> str:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    errors = {**form.errors}
    assert errors, "the form has no errors"
    return str(errors)


def one_audit(**filters) -> AuditEntry:
    entries = list(AuditEntry.all_orgs.filter(**filters))
    assert len(entries) == 1, entries
    return entries[0]


def history_of(client, admin_path: str, pk) -> str:
    return client.get(f"/admin/{admin_path}/{pk}/history/").content.decode()


# --- organizations and memberships ---------------------------------------------------------------


def test_an_organization_edit_needs_a_reason_and_is_audited(operator, org):
    url = f"/admin/orgs/organization/{org.pk}/change/"
    response = submit(operator, url, monthly_budget="50", billing_email="pay@acme.test")
    assert REASON in errors_of(response)
    org.refresh_from_db()
    assert (org.monthly_budget, org.billing_email) != (Decimal(50), "pay@acme.test")
    assert not AuditEntry.all_orgs.exists()

    response = submit(operator, url, monthly_budget="50", billing_email="pay@acme.test", **{REASON: "Agreed cap"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert (org.monthly_budget, org.billing_email) == (Decimal(50), "pay@acme.test")
    audit = one_audit()
    assert (audit.action, audit.actor, audit.organization, audit.reason) == (
        "organization_changed",
        operator.user,
        org,
        "Agreed cap",
    )
    assert audit.details["monthly_budget"] == {"old": None, "new": "50"}
    assert audit.details["billing_email"]["new"] == "pay@acme.test"
    assert set(audit.details) == {"monthly_budget", "billing_email"}
    log = LogEntry.objects.get(object_id=str(org.pk))  # one history row per save
    assert log.user == operator.user
    assert "Agreed cap" in log.get_change_message()
    assert "Agreed cap" in history_of(operator, "orgs/organization", org.pk)
    # the slug is not a field that changes (no service changes it)
    submit(operator, url, slug="moved", **{REASON: "x"})
    org.refresh_from_db()
    assert org.slug != "moved"


def test_a_negative_budget_is_a_form_error(operator, org):
    response = submit(operator, f"/admin/orgs/organization/{org.pk}/change/", monthly_budget="-1", **{REASON: "x"})
    errors_of(response)
    org.refresh_from_db()
    assert org.monthly_budget is None


def test_a_role_change_goes_through_the_service_and_keeps_an_owner(operator, org):
    user = add_member(org)
    membership = Membership.all_orgs.get(organization=org, user=user)
    url = f"/admin/orgs/membership/{membership.pk}/change/"
    assert REASON in errors_of(submit(operator, url, role="admin"))
    membership.refresh_from_db()
    assert membership.role == "member"
    assert submit(operator, url, role="admin", **{REASON: "Runs the team now"}).status_code == 302
    membership.refresh_from_db()
    assert membership.role == "admin"
    audit = one_audit(action="membership_changed")
    assert (audit.organization, audit.reason, audit.details) == (
        org,
        "Runs the team now",
        {"role": {"old": "member", "new": "admin"}},
    )
    # the last owner stays one: the service's rule, as a form error
    owner = Membership.all_orgs.get(organization=org, role="owner")
    response = submit(operator, f"/admin/orgs/membership/{owner.pk}/change/", role="member", **{REASON: "x"})
    assert "owner" in errors_of(response)
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_removing_members_goes_through_the_service_with_a_reason(operator, org):
    member = Membership.all_orgs.get(organization=org, user=add_member(org))
    owners = [Membership.all_orgs.get(organization=org, role="owner")]
    owners.append(Membership.all_orgs.get(organization=org, user=add_member(org, role="owner")))
    post = {"action": "delete_selected", "_selected_action": [m.pk for m in [member, *owners]], "post": "yes"}
    response = operator.post("/admin/orgs/membership/", post)
    assert response.status_code == 200  # the confirmation again: no reason
    assert Membership.all_orgs.filter(organization=org).count() == 3
    operator.post("/admin/orgs/membership/", {**post, REASON: "Left the company"})
    assert not Membership.all_orgs.filter(pk=member.pk).exists()
    kept = Membership.all_orgs.filter(organization=org)
    assert [m.role for m in kept] == ["owner"]  # remove_member keeps the last owner
    deleted = AuditEntry.all_orgs.filter(action="membership_deleted")
    assert {entry.object_id for entry in deleted} == {str(m.pk) for m in [member, *owners]} - {str(kept[0].pk)}
    assert {(entry.reason, entry.organization) for entry in deleted} == {("Left the company", org)}
    log = LogEntry.objects.get(object_id=str(member.pk))
    assert log.action_flag == DELETION
    assert "Left the company" in log.change_message
    assert not LogEntry.objects.filter(object_id=str(kept[0].pk)).exists()  # nothing said about the kept one


# --- specialists ---------------------------------------------------------------------------------


def test_a_specialist_edit_holds_the_services_model_rules(operator, org):
    specialist = make_specialist(org)
    url = f"/admin/specialists/specialist/{specialist.pk}/change/"
    assert REASON in errors_of(submit(operator, url, name="Bea"))
    ModelRate.objects.filter(model="gpt-4o-mini").update(active=False)
    assert "not an active model" in errors_of(submit(operator, url, model="gpt-4o-mini", **{REASON: "x"}))
    limit = ModelRate.objects.get(model="local").max_output_tokens
    response = submit(operator, url, max_output_tokens=str(limit + 1), **{REASON: "x"})
    assert "max_output_tokens" in response.context["adminform"].form.errors
    assert f"at most {limit} output tokens" in errors_of(response)
    specialist.refresh_from_db()
    assert (specialist.name, specialist.max_output_tokens, specialist.model) == ("Ada", 500, "local")
    assert not AuditEntry.all_orgs.exists()

    assert submit(operator, url, name="Bea", max_output_tokens="800", **{REASON: "Longer answers"}).status_code == 302
    specialist.refresh_from_db()
    assert (specialist.name, specialist.max_output_tokens) == ("Bea", 800)
    audit = one_audit()
    assert (audit.action, audit.actor, audit.organization, audit.reason) == (
        "specialist_changed",
        operator.user,
        org,
        "Longer answers",
    )
    assert audit.details == {"name": {"old": "Ada", "new": "Bea"}, "max_output_tokens": {"old": 500, "new": 800}}
    assert LogEntry.objects.filter(object_id=str(specialist.pk)).count() == 1
    assert "Longer answers" in history_of(operator, "specialists/specialist", specialist.pk)


def test_a_specialist_added_in_the_admin_is_hired_through_the_service(operator, org):
    connection = Connection.all_orgs.create(organization=org, name="c", url="https://mcp.example.com/mcp")
    blocked = Tool.all_orgs.create(organization=org, connection=connection, name="blocked", enabled=False)
    form = {
        "organization": str(org.pk),
        "name": "Cy",
        "title": "Clerk",
        "description": "",
        "instructions": "",
        "model": "local",
        "temperature": "0.5",
        "max_output_tokens": "300",
        "status": "active",
        "tools": [str(blocked.pk)],
        REASON: "Asked for by the customer",
    }
    response = operator.post("/admin/specialists/specialist/add/", form)
    assert "not an enabled tool" in errors_of(response)  # the org's allow-list: the service's rule
    assert not Specialist.all_orgs.filter(name="Cy").exists()
    form.pop("tools")
    assert operator.post("/admin/specialists/specialist/add/", form).status_code == 302
    specialist = Specialist.all_orgs.get(name="Cy")
    audit = one_audit(action="specialist_added")
    assert (audit.object_id, audit.organization, audit.reason) == (str(specialist.pk), org, "Asked for by the customer")
    assert audit.details["max_output_tokens"] == {"old": None, "new": 300}


# --- MCP connections and tools -------------------------------------------------------------------


def test_a_connection_edit_goes_through_the_service(operator, org, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    connection = Connection.all_orgs.create(
        organization=org, name="srv", url="https://mcp.example.com/mcp", status=Connection.Status.CONNECTED
    )
    tool = Tool.all_orgs.create(organization=org, connection=connection, name="add")
    url = f"/admin/mcps/connection/{connection.pk}/change/"
    assert REASON in errors_of(submit(operator, url, name="renamed"))
    response = submit(operator, url, url="http://127.0.0.1:8000/mcp", **{REASON: "x"})
    assert "private, loopback" in errors_of(response)
    assert "url" in response.context["adminform"].form.errors
    connection.refresh_from_db()
    assert (connection.url, connection.name) == ("https://mcp.example.com/mcp", "srv")
    assert not AuditEntry.all_orgs.exists()

    # a new URL is pending until synced; the tool's allow-list changes through the service too
    response = submit(operator, url, url="https://93.184.216.34/mcp", **{"tools-0-enabled": None, REASON: "Moved"})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert (connection.url, connection.status) == ("https://93.184.216.34/mcp", "pending")
    tool.refresh_from_db()
    assert tool.enabled is False
    audit = one_audit(action="connection_changed")
    assert (audit.reason, audit.organization) == ("Moved", org)
    assert audit.details == {"url": {"old": "https://mcp.example.com/mcp", "new": "https://93.184.216.34/mcp"}}
    tool_audit = one_audit(action="tool_changed")
    assert (tool_audit.object_id, tool_audit.reason) == (str(tool.pk), "Moved")
    assert tool_audit.details == {"enabled": {"old": True, "new": False}}
    assert "Moved" in history_of(operator, "mcps/connection", connection.pk)


def test_a_connections_token_is_stored_encrypted_and_never_in_the_trail(operator, org, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    form = {
        "organization": str(org.pk),
        "name": "authed",
        "catalog_key": "",
        "transport": "streamable_http",
        "url": "https://mcp.example.com/mcp",
        "auth_type": "bearer",
        "enabled": "on",
        "token": "",
        "header_name": "",
        "tools-TOTAL_FORMS": "0",
        "tools-INITIAL_FORMS": "0",
        REASON: "New server",
    }
    response = operator.post("/admin/mcps/connection/add/", form)
    assert "token is required" in errors_of(response)  # the service's rule
    response = operator.post("/admin/mcps/connection/add/", {**form, "token": "s3cret-token"})
    assert response.status_code == 302
    connection = Connection.all_orgs.get(name="authed")
    assert connection.has_credentials
    audit = one_audit(action="connection_added")
    assert "s3cret-token" not in str(audit.details)
    assert audit.details["token"] == "(secret: not recorded)"
    assert "s3cret-token" not in operator.get(f"/admin/mcps/connection/{connection.pk}/change/").content.decode()


# --- projects, tasks, workspaces -----------------------------------------------------------------


def test_a_task_edit_holds_the_services_assignee_rule(operator, org):
    owner = owner_of(org)
    task = Task.all_orgs.create(organization=org, title="T", created_by=owner)
    url = f"/admin/tasks/task/{task.pk}/change/"
    specialist = make_specialist(org)
    response = submit(
        operator, url, assignee_user=str(owner.pk), assignee_specialist=str(specialist.pk), **{REASON: "x"}
    )
    assert "assignee" in errors_of(response)
    assert (
        submit(
            operator, url, title="T2", assignee_specialist=str(specialist.pk), **{REASON: "Hand it over"}
        ).status_code
        == 302
    )
    task.refresh_from_db()
    assert (task.title, task.assignee_specialist_id) == ("T2", specialist.pk)
    audit = one_audit(action="task_changed")
    assert audit.details == {
        "title": {"old": "T", "new": "T2"},
        "assignee_specialist": {"old": None, "new": str(specialist.pk)},
    }
    # deleted in bulk, each one audited with the reason
    other = Task.all_orgs.create(organization=org, title="U", created_by=owner)
    post = {"action": "delete_selected", "_selected_action": [task.pk, other.pk], "post": "yes"}
    operator.post("/admin/tasks/task/", post)
    assert Task.all_orgs.filter(organization=org).count() == 2
    operator.post("/admin/tasks/task/", {**post, REASON: "Duplicates"})
    assert not Task.all_orgs.filter(organization=org).exists()
    deleted = AuditEntry.all_orgs.filter(action="task_deleted")
    assert sorted(deleted.values_list("object_id", flat=True)) == sorted([str(task.pk), str(other.pk)])
    assert set(deleted.values_list("reason", flat=True)) == {"Duplicates"}


def test_a_project_edit_is_audited(operator, org):
    from tasks.models import Project

    project = Project.all_orgs.create(organization=org, name="P", created_by=owner_of(org))
    url = f"/admin/tasks/project/{project.pk}/change/"
    assert submit(operator, url, name="Q", status="archived", **{REASON: "Done"}).status_code == 302
    project.refresh_from_db()
    assert (project.name, project.status) == ("Q", "archived")
    assert one_audit(action="project_changed").details == {
        "name": {"old": "P", "new": "Q"},
        "status": {"old": "active", "new": "archived"},
    }


def test_a_workspace_is_edited_and_deleted_through_the_service(operator, org, monkeypatch):
    from workspaces import services

    owner = owner_of(org)
    workspace = Workspace.all_orgs.create(organization=org, name="W", created_by=owner)
    url = f"/admin/workspaces/workspace/{workspace.pk}/change/"
    assert submit(operator, url, name="Docs", **{REASON: "Clearer"}).status_code == 302
    workspace.refresh_from_db()
    assert workspace.name == "Docs"
    assert one_audit(action="workspace_changed").details == {"name": {"old": "W", "new": "Docs"}}

    calls: list[dict] = []
    original = services.delete_workspace

    def spy(**kw) -> None:
        calls.append(kw)
        original(**kw)

    monkeypatch.setattr(services, "delete_workspace", spy)
    delete = f"/admin/workspaces/workspace/{workspace.pk}/delete/"
    page = operator.get(delete).content.decode()
    assert f'name="{REASON}"' in page  # the confirmation asks why
    assert operator.post(delete, {"post": "yes"}).status_code == 200  # not without a reason
    assert Workspace.all_orgs.filter(pk=workspace.pk).exists()
    assert operator.post(delete, {"post": "yes", REASON: "Customer asked"}).status_code == 302
    assert not Workspace.all_orgs.filter(pk=workspace.pk).exists()
    assert len(calls) == 1
    assert calls[0]["context"].is_staff
    audit = one_audit(action="workspace_deleted")
    assert (audit.object_id, audit.organization, audit.reason) == (str(workspace.pk), org, "Customer asked")


# --- platform configuration and users ------------------------------------------------------------


def test_a_model_rate_change_is_audited_without_an_org(operator):
    rate = ModelRate.objects.get(model="local")
    url = f"/admin/billing/modelrate/{rate.pk}/change/"
    assert REASON in errors_of(submit(operator, url, active=None))
    assert ModelRate.objects.get(pk=rate.pk).active
    assert submit(operator, url, active=None, **{REASON: "Retired"}).status_code == 302
    assert not ModelRate.objects.get(pk=rate.pk).active
    audit = one_audit(action="modelrate_changed")
    assert (audit.organization, audit.details) == (None, {"active": {"old": True, "new": False}})


def test_a_user_edit_is_audited(operator):
    user = make_user(name="Old Name")
    url = f"/admin/accounts/user/{user.pk}/change/"
    assert REASON in errors_of(submit(operator, url, name="New Name"))
    assert submit(operator, url, name="New Name", **{REASON: "Married"}).status_code == 302
    user.refresh_from_db()
    assert user.name == "New Name"
    audit = one_audit(action="user_changed")
    assert audit.details == {"name": {"old": "Old Name", "new": "New Name"}}
    assert "password" not in audit.details
    assert "Married" in history_of(operator, "accounts/user", user.pk)


def test_view_only_pages_ask_no_reason(operator, org):
    """An operator who may only look at an audited model reads its page: no form to save, no reason."""
    viewer = Client()
    user = make_user(is_staff=True)
    for app, codename in (("orgs", "view_organization"), ("billing", "view_modelrate")):
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    viewer.force_login(user)
    rate = ModelRate.objects.get(model="local")
    for url in (f"/admin/orgs/organization/{org.pk}/change/", f"/admin/billing/modelrate/{rate.pk}/change/"):
        assert REASON in operator.get(url).content.decode(), url  # an audited page: who may save is asked one
        response = viewer.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert REASON not in page, url
        assert 'name="_save"' not in page, url  # read-only indeed


def test_a_save_that_changes_nothing_is_in_neither_the_trail_nor_the_history(operator, org, settings):
    rate = ModelRate.objects.get(model="local")
    for url, pk in (
        (f"/admin/orgs/organization/{org.pk}/change/", org.pk),
        (f"/admin/billing/modelrate/{rate.pk}/change/", rate.pk),
    ):
        response = submit(operator, url, **{REASON: "Just looking"})
        assert response.status_code == 302, url
        assert not AuditEntry.all_orgs.exists(), url
        assert not LogEntry.objects.filter(object_id=str(pk)).exists(), url
        page = operator.get(response["Location"]).content.decode()
        assert "No fields changed." in page, url
        assert "was changed successfully" not in page, url
    # a change of the inline records only: theirs are recorded, not an empty one of the connection
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    connection = Connection.all_orgs.create(organization=org, name="c", url="https://mcp.example.com/mcp")
    Tool.all_orgs.create(organization=org, connection=connection, name="t", input_schema={})
    url = f"/admin/mcps/connection/{connection.pk}/change/"
    assert submit(operator, url, **{"tools-0-enabled": None, REASON: "Block it"}).status_code == 302
    assert list(AuditEntry.all_orgs.values_list("action", flat=True)) == ["tool_changed"]
    assert LogEntry.objects.filter(object_id=str(connection.pk)).count() == 1  # the history names the tool


def test_an_organization_is_added_with_its_owner_as_at_sign_up(operator, org):
    owner = make_user()
    url = "/admin/orgs/organization/add/"
    assert 'href="/admin/orgs/organization/add/"' in operator.get("/admin/orgs/organization/").content.decode()
    fields = form_of(operator, url)
    assert {"name", "owner", REASON} <= set(fields)
    assert not {"slug", "billing_email", "monthly_budget"} & set(fields)
    search = {"app_label": "orgs", "model_name": "membership", "field_name": "user", "term": owner.email}
    found = operator.get("/admin/autocomplete/", search).json()["results"]  # the owner is searched for
    assert [item["id"] for item in found] == [str(owner.pk)]
    assert REASON in errors_of(operator.post(url, {"name": "Globex", "owner": str(owner.pk)}))
    inactive = make_user()
    inactive.is_active = False
    inactive.save()
    assert "owner" in errors_of(operator.post(url, {"name": "Globex", "owner": str(inactive.pk), REASON: "x"}))
    assert not Organization.objects.filter(name="Globex").exists()
    assert not AuditEntry.all_orgs.exists()

    response = operator.post(url, {"name": "Globex", "owner": str(owner.pk), REASON: "Contract signed"})
    assert response.status_code == 302
    created = Organization.objects.get(name="Globex")
    membership = Membership.all_orgs.get(organization=created)
    assert (membership.user, membership.role, membership.status) == (owner, "owner", "active")
    assert created.billing_email == owner.email
    signed_up = CreditAccount.all_orgs.get(organization=org).balance  # what a sign-up opens with
    assert signed_up > 0
    assert CreditAccount.all_orgs.get(organization=created).balance == signed_up
    audit = one_audit()
    assert (audit.action, audit.actor, audit.organization, audit.reason) == (
        "organization_added",
        operator.user,
        created,
        "Contract signed",
    )
    assert audit.details == {"name": {"old": None, "new": "Globex"}, "owner": {"old": None, "new": str(owner.pk)}}
    log = LogEntry.objects.get(object_id=str(created.pk))
    assert (log.action_flag, "Contract signed" in log.change_message) == (ADDITION, True)
    plain = Client()
    staff = make_user(is_staff=True)
    plain.force_login(staff)
    assert plain.get(url).status_code == 403  # adding needs orgs.add_organization
    staff.user_permissions.add(Permission.objects.get(codename="add_organization"))
    assert plain.get(url).status_code == 403  # and, as it opens with the sign-up credits, the money permission
    staff.user_permissions.add(Permission.objects.get(codename="manage_credits"))
    staff = type(staff).objects.get(pk=staff.pk)  # permissions are cached per user object
    plain.force_login(staff)
    assert plain.get(url).status_code == 200


# --- what a first review found ------------------------------------------------------------------


def test_a_connection_page_offers_no_new_tool_row_and_audits_a_toggle(operator, org, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    connection = Connection.all_orgs.create(organization=org, name="c", url="https://mcp.example.com/mcp")
    tool = Tool.all_orgs.create(organization=org, connection=connection, name="t", input_schema={})
    url = f"/admin/mcps/connection/{connection.pk}/change/"
    fields = form_of(operator, url)
    assert fields["tools-MAX_NUM_FORMS"] == "0" or "tools-__prefix__-name" not in fields  # no "add another"
    response = submit(operator, url, **{"tools-0-enabled": None, REASON: "Block it"})
    assert response.status_code == 302
    tool.refresh_from_db()
    assert tool.enabled is False
    assert one_audit(action="tool_changed").reason == "Block it"


def test_a_memberships_status_is_not_a_form_field(operator, org):
    member = add_member(org)
    membership = Membership.all_orgs.get(organization=org, user=member)
    url = f"/admin/orgs/membership/{membership.pk}/change/"
    assert "status" not in form_of(operator, url)
    submit(operator, url, status="invited", **{REASON: "try"})
    membership.refresh_from_db()
    assert membership.status == Membership.Status.ACTIVE


def test_setting_a_password_in_the_admin_needs_a_reason(operator):
    user = make_user()
    url = f"/admin/accounts/user/{user.pk}/password/"
    new = {"password1": "N3w-Passw0rd-long", "password2": "N3w-Passw0rd-long", "usable_password": "true"}
    assert operator.post(url, new).status_code == 200  # the form again: no reason
    user.refresh_from_db()
    assert not user.check_password("N3w-Passw0rd-long")
    assert operator.post(url, {**new, REASON: "Locked out, asked by phone"}).status_code == 302
    user.refresh_from_db()
    assert user.check_password("N3w-Passw0rd-long")
    audit = one_audit(action="user_password_changed")
    assert audit.reason == "Locked out, asked by phone"
    assert "N3w-Passw0rd-long" not in str(audit.details)


def test_a_group_change_is_audited(operator):
    response = operator.post("/admin/auth/group/add/", {"name": "Finance"})
    assert response.status_code == 200  # no reason
    assert operator.post("/admin/auth/group/add/", {"name": "Finance", REASON: "Month-end team"}).status_code == 302
    assert one_audit(action="group_added").reason == "Month-end team"


def test_a_task_cannot_go_to_an_invited_member_or_a_deleted_specialist(operator, org):
    owner = owner_of(org)
    task = Task.all_orgs.create(organization=org, title="T", created_by=owner)
    url = f"/admin/tasks/task/{task.pk}/change/"
    invited = make_user()
    Membership.all_orgs.create(organization=org, user=invited, status=Membership.Status.INVITED)
    assert "assignee_user" in errors_of(submit(operator, url, assignee_user=str(invited.pk), **{REASON: "x"}))
    gone = make_specialist(org)
    Specialist.all_orgs.filter(pk=gone.pk).update(deleted_at=timezone.now())
    response = submit(operator, url, assignee_specialist=str(gone.pk), **{REASON: "x"})
    assert response.status_code == 200  # refused (by the form's choices or the service)
    task.refresh_from_db()
    assert (task.assignee_user_id, task.assignee_specialist_id) == (None, None)


def test_deleting_an_attachment_removes_its_stored_file(operator, org, django_capture_on_commit_callbacks):
    from django.core.files.base import ContentFile

    from chat.models import Attachment

    attachment = Attachment(organization=org, uploaded_by=owner_of(org), filename="a.txt", size=2)
    attachment.file.save("a.txt", ContentFile(b"hi"), save=False)
    attachment.save()
    name, storage = attachment.file.name, attachment.file.storage
    assert storage.exists(name)
    url = f"/admin/chat/attachment/{attachment.pk}/delete/"
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(url, {"post": "yes", REASON: "Uploaded by mistake"})
    assert response.status_code == 302
    assert not Attachment.all_orgs.filter(pk=attachment.pk).exists()
    assert not storage.exists(name)
