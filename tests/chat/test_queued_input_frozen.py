"""A queued turn runs from the input it was accepted with (the workspace files and the history there
were then), and its hold covers the request its worker sends: should that request be bigger than
what was held at acceptance, the hold grows at the turn's frozen rates, or the turn fails with the
402's code before anything reaches the model."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from chat import queued
from chat.models import Message
from chat.providers.base import (
    ChatMessage,
    ProviderRequest,
    ToolSpec,
    request_tokens_estimate,
    request_tokens_upper_bound,
)
from core.credits import token_cost
from specialists.models import Specialist
from tests.conftest import client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import run_worker_batch, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def _send_async(api, specialist, message: str, **extra: str) -> dict:
    response = api.post(
        "/api/chat/async", {"specialistId": str(specialist.pk), "message": message, **extra}, format="json"
    )
    assert response.status_code == 202, response.content
    return response.json()


def _covers(hold: Reservation, request: ProviderRequest) -> bool:
    """The hold covers the request's worst case at the rates it pinned."""
    worst = token_cost(
        input_tokens=request_tokens_upper_bound(request),
        output_tokens=request.max_output_tokens,
        input_per_million=hold.input_credits_per_million,
        output_per_million=hold.output_credits_per_million,
    )
    return hold.amount >= worst


def test_a_file_uploaded_after_acceptance_is_not_sent(bundled_data, fake_llm):
    """The attack: queue a turn in a workspace with "hi" (a tiny hold), then upload a big file; the
    worker used to send the whole file, billed only as far as the balance went."""
    org = make_org(name="Grow Co")
    api = client_for(owner_of(org))
    workspace = api.post("/workspaces", {"name": "W"}, format="json").json()
    before = api.post(
        f"/workspaces/{workspace['id']}/files",
        {"file": SimpleUploadedFile("notes.txt", b"the notes of before", "text/plain")},
        format="multipart",
    )
    assert before.status_code == 201, before.content
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=100)
    body = _send_async(api, specialist, "hi", workspaceId=workspace["id"])
    big = ("中" * 40_000).encode()
    after = api.post(
        f"/workspaces/{workspace['id']}/files",
        {"file": SimpleUploadedFile("big.txt", big, "text/plain")},
        format="multipart",
    )
    assert after.status_code == 201, after.content
    fake_llm.script(Scenario(chunks=["ok"], usage=(300, 1)))
    result = run_worker_batch(server_env({"OPENAI_BASE_URL": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test"}))
    assert result.returncode == 0, result.stderr
    (request,) = fake_llm.requests
    sent = json.dumps(request, ensure_ascii=False)
    assert "the notes of before" in sent  # the files there at acceptance are sent
    assert "中中中" not in sent  # the one uploaded while the turn was queued is not
    message = Message.all_orgs.get(pk=body["messageId"])
    assert message.status == "completed", (message.error_code, message.error)
    hold = Reservation.all_orgs.get(message_id=message.pk)
    assert hold.charged == token_cost(
        input_tokens=300, output_tokens=1, input_per_million=Decimal(15), output_per_million=Decimal(60)
    )
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_an_answer_completed_after_acceptance_is_not_in_the_history(bundled_data):
    """The attack: queue A then B in the same session; B's history used to be read when it ran,
    A's long answer (completed meanwhile, never in B's hold) included."""
    org = make_org(name="Hist Co")
    api = client_for(owner_of(org))
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=100)
    a = _send_async(api, specialist, "long essay")
    b = _send_async(api, specialist, "more", sessionId=a["sessionId"])
    # turn A runs first and answers at length (what its record phase writes)
    Message.all_orgs.filter(pk=a["messageId"]).update(
        status="completed", content="字" * 30_000, completed_at=timezone.now()
    )
    turn = queued.load_queued_turn(message_id=b["messageId"])
    assert turn is not None
    contents = [m.content for m in turn.request.messages]
    assert contents == ["long essay", "more"]  # A's question was there at acceptance, its answer was not
    hold = Reservation.all_orgs.get(message_id=b["messageId"])
    assert turn.reservation_id == hold.pk
    assert _covers(hold, turn.request)


def test_an_answer_completed_before_acceptance_is_in_the_history(bundled_data):
    org = make_org(name="Hist Before Co")
    api = client_for(owner_of(org))
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=100)
    a = _send_async(api, specialist, "first")
    Message.all_orgs.filter(pk=a["messageId"]).update(
        status="completed", content="the answer", completed_at=timezone.now()
    )
    b = _send_async(api, specialist, "second", sessionId=a["sessionId"])
    turn = queued.load_queued_turn(message_id=b["messageId"])
    assert turn is not None
    assert [m.content for m in turn.request.messages] == ["first", "the answer", "second"]


def _legacy(message_id: str) -> None:
    """What a turn queued before turns were frozen looks like: no ``frozen_turn``."""
    Message.all_orgs.filter(pk=message_id).update(frozen_turn=None)


def test_a_request_bigger_than_its_hold_grows_the_hold_at_the_frozen_rates(bundled_data):
    """A turn queued before this version is frozen at pick-up from its specialist as it is: its
    instructions, grown meanwhile, make a request its acceptance's hold did not assume."""
    org = make_org(name="Top Up Co")
    api = client_for(owner_of(org))
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=100)
    body = _send_async(api, specialist, "hi")
    _legacy(body["messageId"])
    before = Reservation.all_orgs.get(message_id=body["messageId"]).amount
    Specialist.all_orgs.filter(pk=specialist.pk).update(instructions="Be thorough. " * 5_000)
    ModelRate.objects.filter(model="gpt-4o-mini").update(input_credits_per_million=Decimal(999))
    turn = queued.load_queued_turn(message_id=body["messageId"])
    assert turn is not None
    hold = Reservation.all_orgs.get(message_id=body["messageId"])
    assert hold.pk == turn.reservation_id
    assert hold.amount > before
    assert hold.input_credits_per_million == Decimal(15)  # the rates pinned at acceptance
    assert _covers(hold, turn.request)
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.reserved == hold.amount


def test_a_hold_that_cannot_grow_fails_the_turn_and_gives_it_back(bundled_data):
    org = make_org(name="No Room Co")
    api = client_for(owner_of(org))
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=100)
    body = _send_async(api, specialist, "hi")
    _legacy(body["messageId"])
    held = Reservation.all_orgs.get(message_id=body["messageId"]).amount
    CreditAccount.all_orgs.filter(organization=org).update(balance=held + Decimal("0.01"))
    Specialist.all_orgs.filter(pk=specialist.pk).update(instructions="Be thorough. " * 5_000)  # ~65k tokens
    assert queued.load_queued_turn(message_id=body["messageId"]) is None
    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.error_code) == ("failed", "insufficient_credits")
    assert Reservation.all_orgs.get(message_id=message.pk).status == "released"
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()


def test_a_legacy_turn_runs_on_the_model_and_rates_of_its_first_hold(bundled_data):
    """A turn queued before turns were frozen, whose specialist moved to another model meanwhile,
    runs on the model its hold pinned, at its rates, with that model's provider and context window."""
    org = make_org(name="Legacy Co")
    api = client_for(owner_of(org))
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=100)
    body = _send_async(api, specialist, "hi")
    _legacy(body["messageId"])
    Specialist.all_orgs.filter(pk=specialist.pk).update(model="gpt-4o")
    ModelRate.objects.filter(model="gpt-4o-mini").update(output_credits_per_million=Decimal(500))
    turn = queued.load_queued_turn(message_id=body["messageId"])
    assert turn is not None
    assert turn.request.model == "gpt-4o-mini"
    assert turn.rate is not None
    assert (turn.rate.model, turn.rate.provider, turn.rate.context_window) == ("gpt-4o-mini", "openai", 128000)
    assert (turn.rate.input_credits_per_million, turn.rate.output_credits_per_million) == (Decimal(15), Decimal(60))
    hold = Reservation.all_orgs.get(message_id=body["messageId"])
    assert hold.model == "gpt-4o-mini"
    assert _covers(hold, turn.request)


def test_the_upper_bound_of_a_request_offering_tools_covers_the_providers_tool_prompt():
    """Anthropic adds some 300-350 hidden input tokens to a request that offers tools."""
    plain = ProviderRequest(
        model="m", system="s", messages=[ChatMessage(role="user", content="hi")], max_output_tokens=1
    )
    tool = ToolSpec(name="t", description="d", input_schema={"type": "object"})
    with_tools = ProviderRequest(
        model="m", system="s", messages=[ChatMessage(role="user", content="hi")], max_output_tokens=1, tools=[tool]
    )
    tool_only = request_tokens_upper_bound(with_tools) - request_tokens_upper_bound(plain)
    assert tool_only >= 350 + request_tokens_estimate(with_tools) - request_tokens_estimate(plain)
