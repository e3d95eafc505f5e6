from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from billing import services as billing
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import ChatSession, Message
from specialists.models import Specialist
from tests.conftest import assert_problem, client_for, make_specialist
from tests.fakes.llm_server import Scenario

pytestmark = pytest.mark.django_db

BODY = {"name": "Ada", "title": "Analyst", "instructions": "Be precise.", "model": "local"}


def test_create_with_defaults(admin_user, org):
    response = client_for(admin_user).post("/specialists", BODY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["temperature"] == 0.7
    assert body["maxOutputTokens"] == 1024
    assert body["status"] == "active"
    assert body["toolIds"] == []
    assert body["monthlyCreditLimit"] is None
    assert body["createdBy"] == str(admin_user.pk)
    assert body["usage"] == {"creditsThisPeriod": "0.000000", "messagesThisPeriod": 0}
    assert {"id", "description", "createdAt", "updatedAt"} <= set(body)


def test_create_validation(admin_user):
    client = client_for(admin_user)
    body = assert_problem(client.post("/specialists", {}, format="json"), 400, "validation_error")
    assert {"name", "model"} <= set(body["errors"])
    bad_model = assert_problem(
        client.post("/specialists", {**BODY, "model": "gpt-99"}, format="json"), 400, "validation_error"
    )
    assert "model" in bad_model["errors"]
    for field, value in (
        ("temperature", 3),
        ("maxOutputTokens", 0),
        ("status", "sleeping"),
        ("monthlyCreditLimit", "1.0000001"),
    ):
        response = client.post("/specialists", {**BODY, field: value}, format="json")
        assert field in assert_problem(response, 400, "validation_error")["errors"], field
    too_long = client.post("/specialists", {**BODY, "maxOutputTokens": 999_999}, format="json")
    assert "maxOutputTokens" in assert_problem(too_long, 400, "validation_error")["errors"]
    unknown_tool = client.post("/specialists", {**BODY, "toolIds": [str(uuid.uuid4())]}, format="json")
    assert "toolIds" in assert_problem(unknown_tool, 400, "validation_error")["errors"]


def test_member_cannot_write(member, org):
    specialist = make_specialist(org)
    client = client_for(member)
    assert_problem(client.post("/specialists", BODY, format="json"), 403, "permission_denied")
    assert_problem(client.put(f"/specialists/{specialist.pk}", {"name": "X"}, format="json"), 403, "permission_denied")
    assert_problem(client.delete(f"/specialists/{specialist.pk}"), 403, "permission_denied")
    assert_problem(client.post("/specialists/wizard", {"brief": "x"}, format="json"), 403, "permission_denied")
    assert client.get(f"/specialists/{specialist.pk}").status_code == 200


def test_other_org_is_404(owner, other_org):
    foreign = make_specialist(other_org)
    client = client_for(owner)
    assert_problem(client.get(f"/specialists/{foreign.pk}"), 404, "not_found")
    assert_problem(client.put(f"/specialists/{foreign.pk}", {"name": "X"}, format="json"), 404, "not_found")
    assert_problem(client.delete(f"/specialists/{foreign.pk}"), 404, "not_found")


def test_needs_auth(anon):
    assert_problem(anon.get("/specialists"), 401, "not_authenticated")


def test_list_filters_search_and_query_count(member, org, django_assert_max_num_queries):
    make_specialist(org, name="Ada", title="Analyst")
    make_specialist(org, name="Bob", title="Bookkeeper", status="paused")
    make_specialist(org, name="Cy", title="Copywriter", model="gpt-4o-mini")
    client = client_for(member)
    with django_assert_max_num_queries(6):
        body = client.get("/specialists").json()
    assert [s["name"] for s in body["results"]] == ["Cy", "Bob", "Ada"]
    assert [s["name"] for s in client.get("/specialists?status=paused").json()["results"]] == ["Bob"]
    assert [s["name"] for s in client.get("/specialists?model=gpt-4o-mini").json()["results"]] == ["Cy"]
    assert [s["name"] for s in client.get("/specialists?search=book").json()["results"]] == ["Bob"]
    assert [s["name"] for s in client.get("/specialists?ordering=name").json()["results"]] == ["Ada", "Bob", "Cy"]


def test_update_keeps_omitted_fields(admin_user, org):
    specialist = make_specialist(org, temperature=0.2)
    response = client_for(admin_user).put(
        f"/specialists/{specialist.pk}", {"title": "Lead Analyst", "status": "paused"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["title"], body["status"], body["temperature"], body["name"]) == ("Lead Analyst", "paused", 0.2, "Ada")


def test_detail_usage_this_period(member, org):
    specialist = make_specialist(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=member, title="x")
    reply = Message.all_orgs.create(session=session, role="assistant", content="hi")
    # a reply with a tool round: two model calls, two ledger entries, one message
    for _ in range(2):
        hold = billing.reserve(
            org=org,
            model="local",
            input_tokens=0,
            max_output_tokens=10,
            specialist_id=specialist.pk,
            message_id=reply.pk,
        )
        billing.settle(reservation_id=hold.reservation_id, input_tokens=1000, output_tokens=1000)
    usage = client_for(member).get(f"/specialists/{specialist.pk}").json()["usage"]
    assert usage == {"creditsThisPeriod": "0.006000", "messagesThisPeriod": 1}


def test_delete_hides_but_keeps_history(admin_user, org):
    specialist = make_specialist(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=admin_user, title="x")
    hold = billing.reserve(org=org, model="local", input_tokens=0, max_output_tokens=10, specialist_id=specialist.pk)
    billing.settle(reservation_id=hold.reservation_id, input_tokens=10, output_tokens=10)
    client = client_for(admin_user)
    assert client.delete(f"/specialists/{specialist.pk}").status_code == 204
    assert_problem(client.get(f"/specialists/{specialist.pk}"), 404, "not_found")
    assert client.get("/specialists").json()["count"] == 0
    assert client.get(f"/api/chat/sessions/{session.pk}").status_code == 200
    assert client.get(f"/billing/credits/usage?specialistId={specialist.pk}").json()["count"] == 1
    assert Specialist.all_orgs.filter(pk=specialist.pk).exists()


def test_wizard_with_the_local_model_drafts_and_bills(admin_user, org):
    client = client_for(admin_user)
    response = client.post(
        "/specialists/wizard", {"brief": "A bookkeeper who reconciles invoices monthly"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    draft = body["draft"]
    assert set(draft) == {
        "name",
        "title",
        "description",
        "instructions",
        "model",
        "temperature",
        "maxOutputTokens",
        "toolIds",
    }
    assert draft["model"] == "local"  # no remote provider is configured
    assert draft["instructions"]
    assert draft["toolIds"] == []
    usage = body["usage"]
    assert usage["inputTokens"] > 0
    assert Decimal(usage["credits"]) > 0
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.amount == -Decimal(usage["credits"])
    assert entry.description == "Specialist wizard draft"
    assert Specialist.all_orgs.count() == 0


def test_wizard_create_saves_the_draft(admin_user, org):
    response = client_for(admin_user).post(
        "/specialists/wizard", {"brief": "A support agent", "create": True}, format="json"
    )
    assert response.status_code == 201
    assert Specialist.all_orgs.get(pk=response.json()["id"]).organization == org


def test_wizard_prefers_the_cheapest_configured_remote_model(admin_user, org, fake_llm):
    draft = {
        "name": "Ada",
        "title": "Bookkeeper",
        "description": "Keeps books.",
        "instructions": "Reconcile.",
        "model": "gpt-5-nano",
        "temperature": 0.3,
        "maxOutputTokens": 800,
        "toolIds": [],
    }
    fake_llm.script(Scenario(chunks=[json.dumps(draft)], usage=(300, 80)))
    body = client_for(admin_user).post("/specialists/wizard", {"brief": "bookkeeping"}, format="json").json()
    assert fake_llm.requests[-1]["model"] == "gpt-5-nano"  # cheapest remote (5 + 40 per million)
    assert body["draft"]["title"] == "Bookkeeper"
    assert body["usage"] == {"inputTokens": 300, "outputTokens": 80, "credits": "0.004700"}


def test_wizard_retries_once_then_502(admin_user, org, fake_llm):
    good = {
        "name": "Bo",
        "title": "T",
        "description": "D",
        "instructions": "I",
        "model": "gpt-4o-mini",
        "temperature": 0.5,
        "maxOutputTokens": 100,
        "toolIds": [],
    }
    fake_llm.script(Scenario(chunks=["not json"], usage=(10, 2)), Scenario(chunks=[json.dumps(good)], usage=(10, 2)))
    body = (
        client_for(admin_user).post("/specialists/wizard", {"brief": "x", "model": "gpt-4o-mini"}, format="json").json()
    )
    assert body["draft"]["name"] == "Bo"
    assert body["usage"]["inputTokens"] == 20  # both attempts are billed
    fake_llm.script(Scenario(chunks=["nope"]), Scenario(chunks=['{"name": 1}']))
    response = client_for(admin_user).post("/specialists/wizard", {"brief": "x", "model": "gpt-4o-mini"}, format="json")
    assert_problem(response, 502, "llm_bad_output")


def test_wizard_refusals(admin_user, org, settings):
    client = client_for(admin_user)
    assert (
        "model"
        in assert_problem(
            client.post("/specialists/wizard", {"brief": "x", "model": "nope"}, format="json"), 400, "validation_error"
        )["errors"]
    )
    assert (
        "brief"
        in assert_problem(client.post("/specialists/wizard", {}, format="json"), 400, "validation_error")["errors"]
    )
    billing.set_circuit(org=org, actor=None, state="open", reason="stop")
    body = assert_problem(client.post("/specialists/wizard", {"brief": "x"}, format="json"), 402, "circuit_open")
    assert body["scope"] == "circuit"


def test_wizard_provider_failure_costs_nothing(admin_user, org, fake_llm):
    """A provider that answers 500 before producing anything: 502, and the hold is released
    without a charge (the same rule as chat)."""
    account = CreditAccount.all_orgs.get(organization=org)
    before = (account.balance, LedgerEntry.all_orgs.filter(organization=org).count())
    fake_llm.script(*[Scenario(status=500)] * 6)
    response = client_for(admin_user).post("/specialists/wizard", {"brief": "x", "model": "gpt-4o-mini"}, format="json")
    assert_problem(response, 502, "llm_unavailable")
    account.refresh_from_db()
    assert (account.balance, LedgerEntry.all_orgs.filter(organization=org).count()) == before
    assert account.reserved == 0
    assert not Reservation.all_orgs.filter(organization=org, status=Reservation.Status.ACTIVE).exists()


def test_a_specialist_deleted_while_it_is_read_is_a_404(member, org, monkeypatch):
    """Found by the fuzzer (two workers, one deleting): the detail re-reads the row it just found."""
    from django.utils import timezone

    from specialists.views import SpecialistViewSet

    specialist = make_specialist(org)
    found = SpecialistViewSet.get_object

    def found_then_deleted(self):
        obj = found(self)
        Specialist.all_orgs.filter(pk=obj.pk).update(deleted_at=timezone.now())  # a concurrent DELETE
        return obj

    monkeypatch.setattr(SpecialistViewSet, "get_object", found_then_deleted)
    assert_problem(client_for(member).get(f"/specialists/{specialist.pk}"), 404, "not_found")


def test_a_wizard_call_cut_short_is_billed_for_what_it_produced(admin_user, org, fake_llm):
    """The wizard is a call of the turn pipeline: a stream that drops midway is settled for what
    it produced (like a chat turn), and nothing stays held."""
    account = CreditAccount.all_orgs.get(organization=org)
    before = account.balance
    fake_llm.script(Scenario(chunks=['{"name": ', '"Ada"', ", more"], drop_after=2))
    response = client_for(admin_user).post("/specialists/wizard", {"brief": "x", "model": "gpt-4o-mini"}, format="json")
    assert_problem(response, 502, "llm_unavailable")
    account.refresh_from_db()
    entries = LedgerEntry.all_orgs.filter(organization=org, kind=LedgerEntry.Kind.USAGE)
    (entry,) = entries  # the text before the drop, billed once
    assert entry.description == "Specialist wizard draft"
    assert entry.output_tokens > 0
    assert account.balance == before + entry.amount
    assert account.reserved == 0


def test_a_page_lists_each_specialists_tools_by_name_and_only_its_own(org, owner, other_org):
    from mcps.models import Connection, Tool

    def tools(of_org, *names):
        connection = Connection.objects.create(organization=of_org, name="C", url="https://mcp.example.com/mcp")
        return [Tool.objects.create(organization=of_org, connection=connection, name=name) for name in names]

    zeta, alpha, mid = tools(org, "zeta", "alpha", "mid")
    first, second = make_specialist(org, name="First"), make_specialist(org, name="Second")
    first.tools.set([zeta, alpha, mid])
    second.tools.set([mid])
    elsewhere = make_specialist(other_org, name="Elsewhere")
    elsewhere.tools.set(tools(other_org, "theirs"))
    page = client_for(owner).get("/specialists?pageSize=100").json()["results"]
    by_name = {row["name"]: row["toolIds"] for row in page}
    assert by_name == {"First": [str(alpha.pk), str(mid.pk), str(zeta.pk)], "Second": [str(mid.pk)]}


def test_a_hand_read_uuid_is_the_same_from_postgresql_and_from_sqlites_hex():
    from core.db import read_uuid

    value = uuid.uuid4()
    assert read_uuid(value) is value
    assert read_uuid(value.hex) == value  # SQLite keeps a UUID as its 32 hex digits
