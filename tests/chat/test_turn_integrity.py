"""A queued turn is billed for the model it called, at the rates it was accepted with, to the user
who sent it (API.md §8), and one that waits too long fails ``queue_timeout`` and costs nothing.
Each attack goes through the API, then a real ``db_worker`` process runs the queue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from chat.models import ChatSession, Message
from leancore.maintenance import run_upkeep
from mcps.models import Connection
from mcps.services import sync_connection
from tasks.models import Task
from tests.conftest import add_member, client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import run_worker_batch, server_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker_env(fake_llm):
    """What a worker process needs to reach the fake providers (and loopback MCP servers)."""

    def env(**extra: str) -> dict[str, str]:
        return server_env(
            {
                "OPENAI_BASE_URL": f"{fake_llm.url}/v1",
                "OPENAI_API_KEY": "sk-test",
                "ANTHROPIC_BASE_URL": fake_llm.url,
                "ANTHROPIC_API_KEY": "sk-ant-test",
                **extra,
            }
        )

    return env


def run_queue(env: dict[str, str]) -> None:
    result = run_worker_batch(env)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def calculator(mcp_server):
    def connect(org, specialist) -> Connection:
        connection = Connection.all_orgs.create(
            organization=org, name="Calc", url=mcp_server.url("streamable_http"), transport="streamable_http"
        )
        sync_connection(connection=connection)
        specialist.tools.set(connection.tools.filter(name="add"))
        return connection

    return connect


def ledger(org) -> list[LedgerEntry]:
    return list(LedgerEntry.all_orgs.filter(organization=org, kind="usage").order_by("created_at"))


def cost(input_tokens: int, output_tokens: int, input_rate: str, output_rate: str) -> Decimal:
    raw = input_tokens * Decimal(input_rate) / 1_000_000 + output_tokens * Decimal(output_rate) / 1_000_000
    return raw.quantize(Decimal("0.000001"))


# --- the model, its limits and its rates are those of acceptance ------------------------------------


def test_a_queued_turn_calls_the_model_it_was_accepted_with_after_the_specialist_is_edited(
    bundled_data, fake_llm, worker_env
):
    org = make_org(name="Frozen Co")
    owner = owner_of(org)
    client = client_for(owner)
    specialist = make_specialist(org, model="gpt-4o-mini", instructions="Answer briefly.", max_output_tokens=300)
    body = client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "Q3?"}, format="json").json()
    # at once, the specialist is moved to a model a hundred times dearer, with new instructions and limits
    edited = client.put(
        f"/specialists/{specialist.pk}",
        {
            "name": "Ada",
            "model": "claude-opus-4-1",
            "instructions": "Write at length.",
            "maxOutputTokens": 30000,
            "temperature": 1.5,
        },
        format="json",
    )
    assert edited.status_code == 200, edited.content
    fake_llm.script(Scenario(chunks=["Up."], usage=(2000, 100)))
    run_queue(worker_env())
    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.content) == ("completed", "Up.")
    (request,) = fake_llm.requests
    assert request["model"] == "gpt-4o-mini"  # the OpenAI API, not Anthropic's: the model accepted
    assert request.get("max_completion_tokens", request.get("max_tokens")) == 300
    assert request["temperature"] == pytest.approx(0.7)
    system = request["messages"][0]["content"]
    assert "Answer briefly." in system
    assert "Write at length." not in system
    (entry,) = ledger(org)
    assert (entry.model, entry.amount) == ("gpt-4o-mini", -cost(2000, 100, "15", "60"))
    assert entry.user_id == owner.pk
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_a_task_run_calls_the_model_it_was_accepted_with(bundled_data, fake_llm, worker_env):
    org = make_org(name="Task Frozen Co")
    client = client_for(owner_of(org))
    specialist = make_specialist(org, model="gpt-4o-mini")
    task = client.post("/tasks", {"title": "Q3", "assigneeSpecialistId": str(specialist.pk)}, format="json").json()
    run = client.post(f"/tasks/{task['id']}/run").json()
    edited = client.put(f"/specialists/{specialist.pk}", {"name": "Ada", "model": "claude-opus-4-1"}, format="json")
    assert edited.status_code == 200, edited.content
    fake_llm.script(Scenario(chunks=["Done."], usage=(1000, 50)))
    run_queue(worker_env())
    assert [r["model"] for r in fake_llm.requests] == ["gpt-4o-mini"]
    assert Message.all_orgs.get(pk=run["messageId"]).status == "completed"
    assert Task.all_orgs.get(pk=task["id"]).status == "done"
    (entry,) = ledger(org)
    assert (entry.model, entry.amount) == ("gpt-4o-mini", -cost(1000, 50, "15", "60"))


@pytest.mark.parametrize("change", ["raised", "deactivated"])
def test_a_tool_round_is_held_and_billed_at_the_rates_of_acceptance(
    bundled_data, fake_llm, worker_env, calculator, change
):
    org = make_org(name="Rates Co")
    owner = owner_of(org)
    client = client_for(owner)
    specialist = make_specialist(org, model="gpt-4o-mini")
    calculator(org, specialist)
    body = client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "2+40"}, format="json")
    body = body.json()
    # after acceptance: the model's rate changes (or is withdrawn) and the specialist is deleted
    if change == "raised":
        ModelRate.objects.filter(model="gpt-4o-mini").update(
            input_credits_per_million=Decimal(1500), output_credits_per_million=Decimal(6000)
        )
    else:
        ModelRate.objects.filter(model="gpt-4o-mini").update(active=False)
    assert client.delete(f"/specialists/{specialist.pk}").status_code == 204
    specialist.tools.clear()  # and its tools taken away: the turn keeps those it was offered
    fake_llm.script(
        Scenario(chunks=[], tool_calls=[{"id": "c1", "name": "add", "arguments": {"a": 2, "b": 40}}], usage=(100, 20)),
        Scenario(chunks=["It is 42."], usage=(150, 10)),
    )
    run_queue(worker_env())
    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.content) == ("completed", "It is 42."), message.error
    assert [r["model"] for r in fake_llm.requests] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [t["function"]["name"] for t in fake_llm.requests[0]["tools"]] == ["add"]
    assert (message.tool_calls[0]["result"], message.tool_calls[0]["isError"]) == ("42", False)
    holds = list(Reservation.all_orgs.filter(message_id=message.pk).order_by("created_at"))
    assert len(holds) == 2
    assert {(h.input_credits_per_million, h.output_credits_per_million) for h in holds} == {(Decimal(15), Decimal(60))}
    assert [e.amount for e in ledger(org)] == [-cost(100, 20, "15", "60"), -cost(150, 10, "15", "60")]
    assert message.credits == cost(100, 20, "15", "60") + cost(150, 10, "15", "60")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


# --- every call is billed to the sender ------------------------------------------------------------


def test_every_call_of_a_queued_turn_is_billed_to_the_user_who_sent_it(bundled_data, worker_env, calculator):
    """An owner sends an async turn into a member's session: the first call and the tool round are
    both the owner's (before, the tool round was billed to the session's creator)."""
    org = make_org(name="Payer Co")
    owner, member = owner_of(org), add_member(org)
    specialist = make_specialist(org, model="local")
    calculator(org, specialist)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=member, title="mine")
    response = client_for(owner).post(
        "/api/chat/async",
        {"specialistId": str(specialist.pk), "sessionId": str(session.pk), "message": "please add a=2 b=40"},
        format="json",
    )
    assert response.status_code == 202, response.content
    run_queue(worker_env())
    message = Message.all_orgs.get(pk=response.json()["messageId"])
    assert message.status == "completed", message.error
    assert "42" in message.content
    entries = ledger(org)
    assert len(entries) == 2  # the call that asked for the tool, and the answer
    assert {e.user_id for e in entries} == {owner.pk}
    assert set(Reservation.all_orgs.filter(message_id=message.pk).values_list("user_id", flat=True)) == {owner.pk}


# --- a turn that waits too long ----------------------------------------------------------------------


def test_a_turn_picked_up_after_the_queue_timeout_fails_and_costs_nothing(bundled_data, fake_llm, worker_env):
    org = make_org(name="Late Co")
    client = client_for(owner_of(org))
    specialist = make_specialist(org, model="gpt-4o-mini")
    chat = client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json").json()
    task = client.post("/tasks", {"title": "T", "assigneeSpecialistId": str(specialist.pk)}, format="json").json()
    run = client.post(f"/tasks/{task['id']}/run").json()
    assert CreditAccount.all_orgs.get(organization=org).reserved > 0
    run_queue(worker_env(TURN_QUEUE_TIMEOUT="0"))  # every turn waited longer than that
    for message_id in (chat["messageId"], run["messageId"]):
        message = Message.all_orgs.get(pk=message_id)
        assert (message.status, message.error_code, message.credits) == ("failed", "queue_timeout", 0)
    assert fake_llm.requests == []  # nothing reached the model
    assert ledger(org) == []
    account = CreditAccount.all_orgs.get(organization=org)
    assert (account.reserved, account.balance) == (Decimal(0), Decimal(100))
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    assert Task.all_orgs.get(pk=task["id"]).status == "todo"  # the task can be run again


def test_maintenance_fails_turns_queued_past_the_timeout(bundled_data, settings, django_capture_on_commit_callbacks):
    settings.TURN_QUEUE_TIMEOUT = 600
    org = make_org(name="Stalled Co")
    client = client_for(owner_of(org))
    specialist = make_specialist(org)
    old = client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json").json()
    fresh = client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "y"}, format="json").json()
    long_ago = timezone.now() - timedelta(seconds=601)
    Message.all_orgs.filter(session_id=old["sessionId"]).update(created_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_upkeep()["expired_queued_turns"] == 1
    expired, waiting = Message.all_orgs.get(pk=old["messageId"]), Message.all_orgs.get(pk=fresh["messageId"])
    assert (expired.status, expired.error_code) == ("failed", "queue_timeout")
    assert waiting.status == "queued"  # within the timeout: still waiting, still held
    holds = Reservation.all_orgs.filter(organization=org)
    assert holds.get(message_id=expired.pk).status == "released"
    assert holds.get(message_id=waiting.pk).status == "active"
    assert CreditAccount.all_orgs.get(organization=org).reserved == holds.get(message_id=waiting.pk).amount
    assert ledger(org) == []
    assert run_upkeep()["expired_queued_turns"] == 0  # once only


def test_a_turn_queued_before_turns_were_frozen_is_billed_to_the_sender_its_hold_names(bundled_data):
    """A turn accepted by the previous version (no record on its message) is frozen when picked up:
    from the specialist as it is, billed to the user its hold names, not the session's creator."""
    from chat.queued import load_queued_turn

    org = make_org(name="Upgrade Co")
    owner, member = owner_of(org), add_member(org)
    specialist = make_specialist(org, model="gpt-4o-mini")
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=member, title="mine")
    body = client_for(owner).post(
        "/api/chat/async",
        {"specialistId": str(specialist.pk), "sessionId": str(session.pk), "message": "x"},
        format="json",
    )
    message_id = body.json()["messageId"]
    Message.all_orgs.filter(pk=message_id).update(frozen_turn=None)
    turn = load_queued_turn(message_id=message_id)
    assert turn is not None
    assert (turn.payer.user_id, turn.request.model, turn.rate.input_credits_per_million) == (
        owner.pk,
        "gpt-4o-mini",
        Decimal(15),
    )
