"""The back office as an operator uses it: read-only history, names not ids, the organizations list
and page (with its usage chart), money actions behind their own permission, the audit trail, and the
month's ledger as CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client

from billing import services
from billing.models import BudgetAlert, Circuit, CircuitEvent, CreditAccount, LedgerEntry
from billing.services.ledger import locked_account, write_ledger_entry
from chat.models import ChatSession, Message
from orgs.models import AuditEntry, Membership
from tests.conftest import add_member, make_org, make_specialist, make_user, owner_of

pytestmark = pytest.mark.django_db


def _staff_client(client_class, *perms):
    user = make_user(is_staff=True)
    for codename in perms:
        app, code = codename.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
    client = client_class()
    client.force_login(user)
    client.user = user
    return client


def _use(org, amount: str, model: str = "gpt-4o-mini", **fields) -> LedgerEntry:
    with transaction.atomic():
        return write_ledger_entry(
            locked_account(org), kind="usage", amount=-Decimal(amount), model=model, input_tokens=10, **fields
        )


def test_history_cannot_be_edited_or_deleted(operator, org):
    specialist = make_specialist(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner_of(org), title="t")
    message = Message.all_orgs.create(session=session, role="user", content="hi")
    alert = BudgetAlert.all_orgs.create(
        organization=org, kind="low_balance", period_start=session.created_at, message="m"
    )
    circuit = services.set_circuit(org=org, actor=operator.user, state="open", reason="r")
    event = CircuitEvent.all_orgs.filter(organization=org).first()
    for name, pk in (
        ("chat/message", message.pk),
        ("chat/chatsession", session.pk),
        ("billing/budgetalert", alert.pk),
        ("billing/circuit", circuit.pk),
        ("billing/circuitevent", event.pk),
        ("orgs/organization", org.pk),
    ):
        assert operator.get(f"/admin/{name}/{pk}/delete/").status_code == 403, name
        if name != "orgs/organization":
            assert operator.get(f"/admin/{name}/{pk}/change/").status_code == 200, name  # readable
            assert operator.post(f"/admin/{name}/{pk}/change/", {}).status_code == 403, name
    alert.refresh_from_db()
    assert alert.message == "m"


def test_names_not_ids(operator, org):
    owner = owner_of(org)
    membership = Membership.all_orgs.get(organization=org, user=owner)
    page = operator.get("/admin/orgs/membership/").content.decode()
    assert f"{owner.email} in {org.name} (owner)" in page
    page = operator.get(f"/admin/orgs/membership/{membership.pk}/change/").content.decode()
    assert f"{owner.email} in {org.name} (owner)" in page
    assert f"Account of {org.name}" in operator.get("/admin/billing/creditaccount/").content.decode()
    services.set_circuit(org=org, actor=owner, state="open", reason="r")
    assert f"{org.name}: open" in operator.get("/admin/billing/circuit/").content.decode()
    specialist = make_specialist(org)
    services.grant_credits(org=org, amount=Decimal(2000), reason="r", actor=owner)
    _use(org, "1234.5", user_id=owner.pk, specialist_id=specialist.pk, specialist_name="Ada")
    page = operator.get(f"/admin/billing/ledgerentry/?organization__id__exact={org.pk}").content.decode()
    assert f'href="/admin/accounts/user/{owner.pk}/change/">{owner.email}</a>' in page
    assert f'href="/admin/specialists/specialist/{specialist.pk}/change/">Ada</a>' in page
    assert "-1,234.500000 credits" in page
    index = operator.get("/admin/").content.decode()
    assert ">MCP<" in index
    assert "Mcps" not in index
    assert "Tasks Database Backend" not in index


def test_organizations_list_columns_filters_and_bounded_queries(operator, django_assert_max_num_queries, clock):
    thirsty = make_org(name="Thirsty")  # 100 signup credits
    _use(thirsty, "60")  # 60 in the last week: 40 left, less than a week of burn
    calm = make_org(name="Calm")
    _use(calm, "1")
    add_member(calm)
    services.set_circuit(org=calm, actor=None, state="open", reason="r")
    page = operator.get("/admin/orgs/organization/").content.decode()
    assert "40.000000 credits" in page  # Thirsty's balance
    assert "open (spending stopped)" in page
    runs_out = operator.get("/admin/orgs/organization/?runway=week").content.decode()
    assert "Thirsty" in runs_out
    assert "Calm" not in runs_out
    circuit_open = operator.get("/admin/orgs/organization/?circuit=open").content.decode()
    assert "Calm" in circuit_open
    assert "Thirsty" not in circuit_open
    top = operator.get("/admin/orgs/organization/?spend=top10&o=-5").content.decode()  # by spend
    assert "Thirsty" in top
    assert top.index("Thirsty") < top.index("Calm")
    # the same number of queries for 2 organizations or 10
    with django_assert_max_num_queries(20) as few:
        operator.get("/admin/orgs/organization/")
    for i in range(8):
        _use(make_org(name=f"Org {i}"), "2")
    with django_assert_max_num_queries(len(few.captured_queries)):
        operator.get("/admin/orgs/organization/")


def test_org_page_shows_billing_and_a_usage_chart(operator, org, clock):
    now = clock["at"]
    clock["at"] = now - timedelta(days=3)
    _use(org, "1.5", model="gpt-4o-mini")
    _use(org, "2.25", model="local")
    clock["at"] = now - timedelta(days=1)
    _use(org, "0.000001", model="local")
    clock["at"] = now
    org.monthly_budget = Decimal(50)
    org.save()
    page = operator.get(f"/admin/orgs/organization/{org.pk}/change/").content.decode()
    assert page.count("<svg") >= 1
    assert "cdn" not in page.lower()
    groups = re.findall(r'<g class="day" data-day="([\d-]+)" data-total="([\d.]+)"', page)
    assert groups == [
        ((now - timedelta(days=3)).date().isoformat(), "3.750000"),
        ((now - timedelta(days=1)).date().isoformat(), "0.000001"),
    ]
    assert 'data-model="local" data-credits="2.250000"' in page
    assert 'class="period-spend" data-spent="3.750001"' in page
    assert 'data-budget="50.000000"' in page
    assert "96.249999 credits" in page  # the balance
    assert "ledger.csv?month=2026-06" in page


def _post_action(client, url, action, pks, **data):
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], **data})


def test_money_actions_need_their_own_permission(org):
    plain = _staff_client(Client, "orgs.view_organization", "orgs.change_organization")
    page = plain.get("/admin/orgs/organization/").content.decode()
    assert "grant_credits" not in page
    assert "open_circuit" not in page
    _post_action(plain, "/admin/orgs/organization/", "grant_credits", [org.pk], apply="1", amount="5", reason="x")
    assert CreditAccount.all_orgs.get(organization=org).balance == Decimal(100)
    money = _staff_client(Client, "orgs.view_organization", "orgs.change_organization", "billing.manage_credits")
    assert "grant_credits" in money.get("/admin/orgs/organization/").content.decode()
    form = _post_action(money, "/admin/orgs/organization/", "grant_credits", [org.pk])
    assert form.status_code == 200
    assert b"reason" in form.content
    response = _post_action(
        money, "/admin/orgs/organization/", "grant_credits", [org.pk], apply="1", amount="5.5", reason="Promo"
    )
    assert response.status_code == 302
    assert CreditAccount.all_orgs.get(organization=org).balance == Decimal("105.5")
    audit = AuditEntry.all_orgs.get(action="grant_credits")
    assert (audit.actor, audit.organization, audit.reason) == (money.user, org, "Promo")
    assert audit.details == {"amount": "5.500000", "balance_after": "105.500000"}
    log = LogEntry.objects.get(object_id=str(org.pk))
    assert log.user == money.user
    assert "grant_credits: Promo" in log.change_message


def test_adjust_refund_circuit_and_alerts_are_audited(operator, org):
    url = "/admin/orgs/organization/"
    _post_action(operator, url, "adjust_credits", [org.pk], apply="1", kind="adjustment", amount="-10", reason="Fix")
    usage = _use(org, "4")
    _post_action(operator, "/admin/billing/ledgerentry/", "refund", [usage.pk], apply="1", reason="Bad answer")
    refund = LedgerEntry.all_orgs.get(organization=org, kind="refund")
    assert refund.amount == Decimal(4)
    assert str(usage.pk) in refund.description
    assert refund.user_id == operator.user.pk
    assert CreditAccount.all_orgs.get(organization=org).balance == Decimal(90)
    # a circuit needs a reason
    form = _post_action(operator, url, "open_circuit", [org.pk], apply="1", reason="")
    assert form.status_code == 200
    _post_action(operator, url, "open_circuit", [org.pk], apply="1", reason="Runaway spend")
    circuit = Circuit.all_orgs.get(organization=org)
    assert (circuit.state, circuit.reason, circuit.opened_by) == ("open", "Runaway spend", operator.user)
    alert = BudgetAlert.all_orgs.get(organization=org, kind="circuit_opened")
    _post_action(operator, "/admin/billing/budgetalert/", "acknowledge", [alert.pk], apply="1", reason="Seen it")
    alert.refresh_from_db()
    assert alert.acknowledged_by == operator.user
    _post_action(operator, url, "close_circuit", [org.pk], apply="1", reason="Talked to them")
    assert Circuit.all_orgs.get(organization=org).state == "closed"
    actions = list(AuditEntry.all_orgs.filter(organization=org).order_by("created_at").values_list("action", "reason"))
    assert actions == [
        ("adjust_credits", "Fix"),
        ("refund_credits", "Bad answer"),
        ("open_circuit", "Runaway spend"),
        ("acknowledge_alerts", "Seen it"),
        ("close_circuit", "Talked to them"),
    ]
    assert LogEntry.objects.filter(object_id=str(org.pk)).count() == 5  # money, circuit and alert changes
    page = operator.get("/admin/orgs/auditentry/").content.decode()
    assert "Runaway spend" in page
    entry = AuditEntry.all_orgs.first()
    assert operator.post(f"/admin/orgs/auditentry/{entry.pk}/change/", {}).status_code == 403
    assert operator.get(f"/admin/orgs/auditentry/{entry.pk}/delete/").status_code == 403
    history = operator.get(f"/admin/orgs/organization/{org.pk}/history/").content.decode()
    assert "Runaway spend" in history


def test_ledger_csv_for_a_month_has_exact_amounts(operator, org, clock):
    owner = owner_of(org)
    _use(org, "0.000001", model="local", output_tokens=5)
    _use(org, "12.345678", model="gpt-4o-mini")
    services.grant_credits(org=org, amount=Decimal("1000.5"), reason="Top-up", actor=owner)
    clock["at"] += timedelta(days=40)
    _use(org, "7")  # next month: not in June
    response = operator.get(f"/admin/orgs/organization/{org.pk}/ledger.csv?month=2026-06")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    ledger = rows[1 : rows.index([])]
    assert [(row[1], row[2]) for row in ledger] == [
        ("usage", "-0.000001"),
        ("usage", "-12.345678"),
        ("grant", "1000.500000"),
    ]
    assert ledger[-1][3] == "1088.154321"
    assert ledger[-1][10] == owner.email
    usage = rows[rows.index(["usage_model", "input_tokens", "output_tokens", "credits"]) + 1 :]
    assert usage[:2] == [["gpt-4o-mini", "10", "0", "12.345678"], ["local", "10", "5", "0.000001"]]
    totals = dict(row for row in rows[rows.index(["total_kind", "amount"]) + 1 :] if row)
    assert totals == {"usage": "-12.345679", "grant": "1000.500000", "refund": "0.000000", "adjustment": "0.000000"}
    assert operator.get(f"/admin/orgs/organization/{org.pk}/ledger.csv?month=2026-13").status_code == 404
    plain = _staff_client(type(operator), "orgs.view_organization")
    assert plain.get(f"/admin/orgs/organization/{org.pk}/ledger.csv").status_code == 403


def test_transcript_and_task_rerun(operator, org):
    specialist = make_specialist(org)
    owner = owner_of(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner, title="t")
    Message.all_orgs.create(session=session, role="user", content="what is 2+2?")
    Message.all_orgs.create(
        session=session,
        role="assistant",
        content="4",
        input_tokens=12,
        output_tokens=3,
        credits=Decimal("0.5"),
        tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 2}, "result": "4"}],
    )
    page = operator.get(f"/admin/chat/chatsession/{session.pk}/change/").content.decode()
    assert "what is 2+2?" in page
    assert "12 in / 3 out tokens, 0.500000 credits" in page
    assert "&quot;a&quot;: 2" in page
    from tasks.models import Task

    task = Task.all_orgs.create(
        organization=org, title="T", created_by=owner, assignee_specialist=specialist, error="The run failed."
    )
    done = Task.all_orgs.create(organization=org, title="D", created_by=owner, status="done")
    _post_action(operator, "/admin/tasks/task/", "rerun", [task.pk, done.pk], apply="1", reason="Provider was down")
    task.refresh_from_db()
    assert task.status == "in_progress"
    assert task.error == ""
    assert Task.all_orgs.get(pk=done.pk).status == "done"
    audit = AuditEntry.all_orgs.get(action="rerun_task", object_id=str(task.pk))
    assert audit.reason == "Provider was down"
    assert operator.get(f"/admin/tasks/task/?organization__id__exact={org.pk}").status_code == 200
    assert operator.get(f"/admin/chat/chatsession/?organization__id__exact={org.pk}").status_code == 200


def test_view_only_staff_cannot_run_any_action(org):
    """Acknowledging alerts, syncing an MCP connection and re-running a task change things (a run
    spends credits): a staff user who may only look is offered none of them, and a forged POST
    changes nothing."""
    from mcps.models import Connection
    from tasks.models import Task

    services.set_circuit(org=org, actor=None, state="open", reason="alert me")  # an open alert
    alert = BudgetAlert.all_orgs.for_org(org).get()
    connection = Connection.all_orgs.create(organization=org, name="c", url="https://mcp.example.com/mcp")
    task = Task.all_orgs.create(organization=org, title="t", created_by=owner_of(org), error="failed before")
    viewer = _staff_client(
        Client,
        "orgs.view_organization",
        "billing.view_budgetalert",
        "mcps.view_connection",
        "tasks.view_task",
    )
    pages = {
        "/admin/orgs/organization/": "acknowledge_alerts",
        "/admin/billing/budgetalert/": "acknowledge",
        "/admin/mcps/connection/": "sync_tools",
        "/admin/tasks/task/": "rerun",
    }
    for url, action in pages.items():
        assert f'value="{action}"' not in viewer.get(url).content.decode(), url
    _post_action(viewer, "/admin/billing/budgetalert/", "acknowledge", [alert.pk])
    _post_action(viewer, "/admin/orgs/organization/", "acknowledge_alerts", [org.pk])
    _post_action(viewer, "/admin/mcps/connection/", "sync_tools", [connection.pk])
    _post_action(viewer, "/admin/tasks/task/", "rerun", [task.pk])
    alert.refresh_from_db()
    connection.refresh_from_db()
    task.refresh_from_db()
    assert alert.acknowledged_at is None
    assert (connection.status, connection.last_synced_at) == ("pending", None)
    assert (task.status, task.session_id) == ("todo", None)
    assert not AuditEntry.all_orgs.exists()


def test_deleting_a_specialist_in_the_admin_lets_it_go_as_the_api_does(operator, org):
    from specialists.models import Specialist

    specialist = make_specialist(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner_of(org), title="t")
    response = operator.post(f"/admin/specialists/specialist/{specialist.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200  # the confirmation again: a deletion needs a reason
    assert Specialist.all_orgs.get(pk=specialist.pk).deleted_at is None
    response = operator.post(
        f"/admin/specialists/specialist/{specialist.pk}/delete/", {"post": "yes", "audit_reason": "Not needed"}
    )
    assert response.status_code == 302
    specialist = Specialist.all_orgs.get(pk=specialist.pk)  # still there: hidden, its chats readable
    assert specialist.deleted_at is not None
    assert specialist.status == "archived"
    assert ChatSession.all_orgs.filter(pk=session.pk).exists()
    audit = AuditEntry.all_orgs.get(action="specialist_deleted")
    assert (audit.object_id, audit.reason, audit.organization) == (str(specialist.pk), "Not needed", org)


def _asks_a_reason_first(client, url: str, action: str, pks) -> None:
    """The action's own page: what it applies to, and a reason it will not go on without."""
    page = _post_action(client, url, action, pks)
    assert page.status_code == 200, (url, page.status_code)
    assert b'name="reason"' in page.content
    assert b'name="apply"' in page.content
    refused = _post_action(client, url, action, pks, apply="1", reason="")
    assert refused.status_code == 200  # the page again, with the reason's error
    assert refused.context["form"].errors["reason"]


def test_rerunning_a_task_asks_a_reason_and_records_it(operator, org):
    from tasks.models import Task

    task = Task.all_orgs.create(
        organization=org, title="T", created_by=owner_of(org), assignee_specialist=make_specialist(org), error="x"
    )
    _asks_a_reason_first(operator, "/admin/tasks/task/", "rerun", [task.pk])
    task.refresh_from_db()
    assert (task.status, task.error, task.session_id) == ("todo", "x", None)
    assert not AuditEntry.all_orgs.exists()
    response = _post_action(operator, "/admin/tasks/task/", "rerun", [task.pk], apply="1", reason="Quota raised")
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == "in_progress"
    audit = AuditEntry.all_orgs.get(action="rerun_task")
    assert (audit.actor, audit.organization, audit.reason) == (operator.user, org, "Quota raised")
    assert audit.details["previous_error"] == "x"
    assert "Quota raised" in LogEntry.objects.get(object_id=str(task.pk)).change_message


def test_acknowledging_alerts_asks_a_reason_and_records_it(operator, org):
    services.set_circuit(org=org, actor=None, state="open", reason="alert me")
    alert = BudgetAlert.all_orgs.for_org(org).get()
    for url, action, pk in (
        ("/admin/billing/budgetalert/", "acknowledge", alert.pk),
        ("/admin/orgs/organization/", "acknowledge_alerts", org.pk),
    ):
        _asks_a_reason_first(operator, url, action, [pk])
        alert.refresh_from_db()
        assert alert.acknowledged_at is None, url
    assert not AuditEntry.all_orgs.exists()
    url = "/admin/orgs/organization/"
    response = _post_action(operator, url, "acknowledge_alerts", [org.pk], apply="1", reason="Customer called")
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == operator.user
    audit = AuditEntry.all_orgs.get(action="acknowledge_alerts")
    assert (audit.organization, audit.reason, audit.details["alerts"]) == (org, "Customer called", [str(alert.pk)])
    # nothing open any more: nothing to acknowledge, nothing asked, nothing recorded
    response = _post_action(operator, "/admin/billing/budgetalert/", "acknowledge", [alert.pk])
    assert response.status_code == 302
    assert AuditEntry.all_orgs.count() == 1


def test_syncing_a_connection_asks_a_reason_and_records_it(operator, org, monkeypatch):
    from mcps import services as mcp_services
    from mcps.client import RemoteTool
    from mcps.models import Connection, Tool

    async def remote_tools(target, *, time_limit):
        return [RemoteTool(name="add", description="Adds", input_schema={"type": "object"})]

    monkeypatch.setattr(mcp_services, "list_remote_tools", remote_tools)
    connection = Connection.all_orgs.create(organization=org, name="c", url="https://mcp.example.com/mcp")
    url = "/admin/mcps/connection/"
    _asks_a_reason_first(operator, url, "sync_tools", [connection.pk])
    connection.refresh_from_db()
    assert (connection.status, connection.last_synced_at) == ("pending", None)
    assert not Tool.all_orgs.exists()
    response = _post_action(operator, url, "sync_tools", [connection.pk], apply="1", reason="New tools released")
    assert response.status_code == 302
    assert list(Tool.all_orgs.filter(connection=connection).values_list("name", flat=True)) == ["add"]
    audit = AuditEntry.all_orgs.get(action="sync_mcp_connection")
    assert (audit.organization, audit.reason) == (org, "New tools released")
    assert audit.details == {"added": 1, "updated": 0, "removed": 0}

    async def unreachable(target, *, time_limit):
        raise ValueError("connection refused")

    monkeypatch.setattr(mcp_services, "list_remote_tools", unreachable)
    _post_action(operator, url, "sync_tools", [connection.pk], apply="1", reason="Retry after their outage")
    failed = AuditEntry.all_orgs.filter(action="sync_mcp_connection").latest("created_at")
    assert (failed.reason, failed.details["status"]) == ("Retry after their outage", "error")
    assert "connection refused" in failed.details["error"]


def test_revoking_a_refresh_token_asks_a_reason_and_records_it(operator, owner):
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    from accounts.services import issue_tokens

    refresh = issue_tokens(user=owner).refresh
    token = OutstandingToken.objects.get(user=owner)
    url = "/admin/token_blacklist/outstandingtoken/"
    _asks_a_reason_first(operator, url, "revoke", [token.pk])
    assert not hasattr(OutstandingToken.objects.get(pk=token.pk), "blacklistedtoken")
    response = _post_action(operator, url, "revoke", [token.pk], apply="1", reason="Laptop stolen")
    assert response.status_code == 302
    assert hasattr(OutstandingToken.objects.get(pk=token.pk), "blacklistedtoken")
    audit = AuditEntry.all_orgs.get(action="revoke_refresh_token")
    assert (audit.actor, audit.organization, audit.reason) == (operator.user, None, "Laptop stolen")
    assert (audit.object_id, audit.details) == (str(token.pk), {"user": str(owner.pk), "jti": token.jti})
    assert refresh not in f"{audit.object_repr} {audit.details}"
    assert "Laptop stolen" in LogEntry.objects.get(object_id=str(token.pk)).change_message
    # once revoked, there is nothing to revoke again
    _post_action(operator, url, "revoke", [token.pk], apply="1", reason="again")
    assert AuditEntry.all_orgs.count() == 1
    # who may only look is not offered it, and a forged post revokes nothing
    issue_tokens(user=owner)
    other = OutstandingToken.objects.exclude(pk=token.pk).get(user=owner)
    viewer = _staff_client(Client, "token_blacklist.view_outstandingtoken")
    assert 'value="revoke"' not in viewer.get(url).content.decode()
    _post_action(viewer, url, "revoke", [other.pk], apply="1", reason="x")
    assert not hasattr(OutstandingToken.objects.get(pk=other.pk), "blacklistedtoken")
