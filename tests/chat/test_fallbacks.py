"""Retries and fallbacks (API.md §6), through the stream endpoint in process, the real openai and
anthropic SDKs and the wire fakes: a call that fails before its first output is retried once on
the same model, then each fallback model is tried with the same one retry; each attempt is held
and settled on its own at its model's frozen rates, one that failed with nothing costs nothing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from chat import fallbacks
from chat.jobs import run_queued_message
from chat.models import Message
from core.credits import token_cost
from mcps.models import Connection
from mcps.services import sync_connection
from tests.conftest import make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario

pytestmark = pytest.mark.django_db(transaction=True)

PRIMARY = "gpt-4o-mini"  # openai: 15 in / 60 out per million
BACKUP = "claude-haiku-4-5"  # anthropic: 100 in / 500 out per million
DOWN = Scenario(status=503)


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """The pauses before each retry, as the policy asked for them (not slept: the suite stays fast)."""
    asked: list[float] = []

    async def pause(*, seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(fallbacks, "pause", pause)
    return asked


@pytest.fixture
def team(bundled_data, fake_llm, pauses):
    def setup():
        org = make_org(name="Failover")
        return org, issue_tokens(user=owner_of(org)).access

    return setup


async def _setup(team, **fields):
    def make():
        org, token = team()
        specialist = make_specialist(org, model=PRIMARY, **fields)
        return org, specialist, token

    return await database_sync_to_async(make)()


def _events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def _stream(specialist, token: str, message: str = "Q3?"):
    """The stream's status and events, or its problem body."""
    response = await AsyncClient().post(
        "/api/chat/stream",
        {"specialistId": str(specialist.pk), "message": message},
        content_type="application/json",
        headers={"accept": "text/event-stream", "authorization": f"Bearer {token}"},
    )
    if response.status_code != 200:
        return response.status_code, json.loads(response.content)
    return 200, _events(b"".join([chunk async for chunk in response.streaming_content]).decode())


def _billing(org):
    """The org's usage entries (model, tokens, amount), its holds' statuses by model, what stays held."""
    entries = [
        (e.model, e.input_tokens, e.output_tokens, e.amount)
        for e in LedgerEntry.all_orgs.filter(organization=org, kind="usage").order_by("created_at")
    ]
    holds = [(r.model, r.status) for r in Reservation.all_orgs.filter(organization=org).order_by("created_at")]
    return entries, holds, CreditAccount.all_orgs.get(organization=org).reserved


def _message(org) -> Message:
    return Message.all_orgs.get(role="assistant", session__organization=org)


def cost(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    rate = ModelRate.objects.get(model=model)
    return token_cost(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_per_million=rate.input_credits_per_million,
        output_per_million=rate.output_credits_per_million,
    )


async def test_a_model_that_fails_twice_falls_back_and_each_attempt_is_held_and_billed_on_its_own(team, fake_llm):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP], max_output_tokens=300)
    fake_llm.script(DOWN, DOWN, Scenario(chunks=["Up", " again."], usage=(800, 40)))
    status, events = await _stream(specialist, token)
    assert status == 200, events
    names = [name for name, _ in events]
    assert names == ["session", "fallback", "delta", "delta", "usage", "done"]
    assert events[1][1] == {"fromModel": PRIMARY, "toModel": BACKUP, "reason": "http_503"}
    usage = events[4][1]
    assert usage["model"] == BACKUP
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY, PRIMARY, BACKUP]  # one retry, then the fallback
    assert fake_llm.requests[2]["max_tokens"] == 300  # the specialist's limit (below the model's own)

    def check():
        entries, holds, reserved = _billing(org)
        expected = cost(BACKUP, 800, 40)
        assert entries == [(BACKUP, 800, 40, -expected)]  # at the fallback's own rates
        assert holds == [(PRIMARY, "released"), (PRIMARY, "released"), (BACKUP, "settled")]  # two attempts: free
        assert reserved == 0
        message = _message(org)
        assert (message.status, message.model, message.content) == ("completed", BACKUP, "Up again.")
        assert message.credits == expected
        assert Decimal(usage["credits"]) == expected

    await database_sync_to_async(check)()
    session = await AsyncClient().get(
        f"/api/chat/sessions/{events[0][1]['sessionId']}", headers={"authorization": f"Bearer {token}"}
    )
    models = [(m["role"], m["model"]) for m in json.loads(session.content)["messages"]]
    assert models == [("user", None), ("assistant", BACKUP)]  # the message names the model that answered


async def test_a_retry_on_the_same_model_needs_no_fallback(team, fake_llm, pauses):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP])
    fake_llm.script(Scenario(status=429, retry_after="2"), Scenario(chunks=["Fine."], usage=(100, 5)))
    status, events = await _stream(specialist, token)
    assert [name for name, _ in events] == ["session", "delta", "usage", "done"]
    assert events[2][1]["model"] == PRIMARY
    assert pauses == [2.0]  # the provider's Retry-After, honoured
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY, PRIMARY]

    def check():
        entries, holds, reserved = _billing(org)
        assert entries == [(PRIMARY, 100, 5, -cost(PRIMARY, 100, 5))]
        assert holds == [(PRIMARY, "released"), (PRIMARY, "settled")]
        assert (_message(org).model, reserved) == (PRIMARY, 0)

    await database_sync_to_async(check)()


async def test_a_retry_after_longer_than_five_seconds_skips_the_retry(team, fake_llm, pauses):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP])
    fake_llm.script(Scenario(status=503, retry_after="30"), Scenario(chunks=["Here."]))
    status, events = await _stream(specialist, token)
    assert [name for name, _ in events] == ["session", "fallback", "delta", "usage", "done"]
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY, BACKUP]
    assert pauses == []


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_provider_errors_are_neither_retried_nor_fallen_back(team, fake_llm, status):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP])
    fake_llm.script(Scenario(status=status), Scenario(chunks=["never"]))
    code, body = await _stream(specialist, token)
    assert (code, body["code"]) == (502, "llm_unavailable")  # before the stream: a problem
    assert f"{PRIMARY} (http_{status})" in body["detail"]
    assert len(fake_llm.requests) == 1

    def check():
        entries, holds, reserved = _billing(org)
        assert (entries, holds, reserved) == ([], [(PRIMARY, "released")], 0)

    await database_sync_to_async(check)()


async def test_every_model_failing_ends_with_llm_unavailable_naming_each_model_tried(team, fake_llm, settings):
    settings.LLM_FIRST_BYTE_TIMEOUT = 0.3
    org, specialist, token = await _setup(team, fallback_models=[BACKUP, "gpt-4.1-mini"])
    stall = Scenario(stall=3)  # no first byte: not even the headers
    fake_llm.script(DOWN, DOWN, stall, stall, Scenario(status=502), Scenario(status=500))
    status, events = await _stream(specialist, token)
    assert status == 200  # the first fallback event started the stream
    assert [name for name, _ in events] == ["session", "fallback", "fallback", "error"]
    assert events[1][1] == {"fromModel": PRIMARY, "toModel": BACKUP, "reason": "http_503"}
    assert events[2][1] == {"fromModel": BACKUP, "toModel": "gpt-4.1-mini", "reason": "timeout"}
    error = events[3][1]
    assert error["code"] == "llm_unavailable"
    assert (
        f"{PRIMARY} (http_503, http_503), {BACKUP} (timeout, timeout), gpt-4.1-mini (http_502, http_500)"
        in error["detail"]
    )
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY] * 2 + [BACKUP] * 2 + ["gpt-4.1-mini"] * 2

    def check():
        entries, holds, reserved = _billing(org)
        assert entries == []  # six attempts, none with output or usage: nothing billed
        assert {status for _, status in holds} == {"released"}
        assert len(holds) == 6
        assert reserved == 0
        message = _message(org)
        assert (message.status, message.error_code, message.credits) == ("failed", "llm_unavailable", 0)

    await database_sync_to_async(check)()


async def test_without_fallbacks_the_retried_failure_is_a_502_before_the_stream(team, fake_llm, pauses):
    org, specialist, token = await _setup(team)
    fake_llm.script(DOWN, DOWN, Scenario(chunks=["never"]))
    code, body = await _stream(specialist, token)
    assert (code, body["code"]) == (502, "llm_unavailable")
    assert f"{PRIMARY} (http_503, http_503)" in body["detail"]
    assert len(fake_llm.requests) == 2
    assert pauses == [fallbacks.BACKOFF_SECONDS]


async def test_a_connection_error_before_the_first_output_is_retried(team, fake_llm):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP])
    fake_llm.script(Scenario(chunks=["lost"], drop_after=0), Scenario(chunks=["Back."], usage=(50, 2)))
    status, events = await _stream(specialist, token)
    assert [name for name, _ in events] == ["session", "delta", "usage", "done"]
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY, PRIMARY]


async def test_a_failure_after_the_output_started_is_not_retried(team, fake_llm):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP])
    fake_llm.script(Scenario(chunks=["one ", "two ", "three"], drop_after=2), Scenario(chunks=["never"]))
    status, events = await _stream(specialist, token)
    assert [name for name, _ in events] == ["session", "delta", "delta", "usage", "error"]
    assert events[-1][1]["code"] == "llm_unavailable"
    assert events[-2][1]["model"] == PRIMARY
    assert len(fake_llm.requests) == 1

    def check():
        entries, holds, reserved = _billing(org)
        (entry,) = entries
        assert entry[0] == PRIMARY
        assert entry[2] > 0  # what was produced is billed
        assert (holds, reserved) == ([(PRIMARY, "settled")], 0)
        message = _message(org)
        assert (message.status, message.model, message.content) == ("failed", PRIMARY, "one two ")

    await database_sync_to_async(check)()


async def test_a_fallback_models_output_limit_is_its_own_when_smaller(team, fake_llm):
    def small_model():
        ModelRate.objects.create(
            model="small-backup",
            provider="anthropic",
            display_name="Small",
            input_credits_per_million=Decimal(1),
            output_credits_per_million=Decimal(2),
            context_window=100_000,
            max_output_tokens=64,
        )

    await database_sync_to_async(small_model)()
    org, specialist, token = await _setup(team, fallback_models=["small-backup"], max_output_tokens=500)
    fake_llm.script(Scenario(status=529), Scenario(status=529), Scenario(chunks=["ok"], usage=(10, 2)))
    status, events = await _stream(specialist, token)
    assert events[1][1]["reason"] == "http_529"
    assert fake_llm.requests[0]["max_completion_tokens"] == 500
    assert fake_llm.requests[2]["max_tokens"] == 64

    def holds():
        return list(Reservation.all_orgs.filter(organization=org).order_by("created_at").values_list("model", "amount"))

    held = await database_sync_to_async(holds)()
    assert held[2][0] == "small-backup"
    assert held[2][1] < held[0][1]  # held for 64 output tokens at its own rates


async def test_a_refused_hold_on_a_fallback_ends_the_chain_with_its_402(team, fake_llm):
    org, specialist, token = await _setup(team, fallback_models=["claude-opus-4-1"], max_output_tokens=30000)

    def leave_little():  # enough for the primary's worst case (2 credits), not for Opus's (225)
        CreditAccount.all_orgs.filter(organization=org).update(balance=Decimal(5))

    await database_sync_to_async(leave_little)()
    fake_llm.script(DOWN, DOWN, Scenario(chunks=["never"]))
    code, body = await _stream(specialist, token)
    assert (code, body["code"]) == (402, "insufficient_credits")  # no fallback event yet: a problem
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY, PRIMARY]

    def check():
        entries, holds, reserved = _billing(org)
        assert (entries, holds, reserved) == ([], [(PRIMARY, "released"), (PRIMARY, "released")], 0)
        assert _message(org).error_code == "insufficient_credits"

    await database_sync_to_async(check)()


async def test_each_tool_round_starts_again_at_the_specialists_model(team, fake_llm, mcp_server):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP])

    def connect():
        connection = Connection.all_orgs.create(
            organization=org, name="Calc", url=mcp_server.url("streamable_http"), transport="streamable_http"
        )
        sync_connection(connection=connection)
        specialist.tools.set(connection.tools.filter(name="add"))

    await database_sync_to_async(connect)()
    add = {"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}
    fake_llm.script(
        DOWN,
        DOWN,
        Scenario(chunks=[], tool_calls=[add], usage=(300, 20)),  # the fallback asks for the tool
        Scenario(chunks=["It is 5."], usage=(400, 6)),  # the next round: the specialist's model again
    )
    status, events = await _stream(specialist, token, "add a=2 b=3")
    names = [name for name, _ in events]
    assert names == ["session", "fallback", "tool_call", "tool_result", "delta", "usage", "done"]
    assert events[5][1]["model"] == PRIMARY  # the last call's model
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY, PRIMARY, BACKUP, PRIMARY]

    def check():
        entries, holds, reserved = _billing(org)
        assert [(model, i, o) for model, i, o, _ in entries] == [(BACKUP, 300, 20), (PRIMARY, 400, 6)]
        assert [amount for *_, amount in entries] == [-cost(BACKUP, 300, 20), -cost(PRIMARY, 400, 6)]
        assert holds == [(PRIMARY, "released"), (PRIMARY, "released"), (BACKUP, "settled"), (PRIMARY, "settled")]
        assert reserved == 0
        assert _message(org).model == PRIMARY

    await database_sync_to_async(check)()


async def test_a_queued_turn_keeps_the_fallbacks_and_rates_it_was_accepted_with(team, fake_llm):
    org, specialist, token = await _setup(team, fallback_models=[BACKUP], max_output_tokens=300)
    response = await AsyncClient().post(
        "/api/chat/async",
        {"specialistId": str(specialist.pk), "message": "Q3?"},
        content_type="application/json",
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.content
    message_id = json.loads(response.content)["messageId"]
    edited = await AsyncClient().put(
        f"/specialists/{specialist.pk}",
        {"name": "Ada", "fallbackModels": ["gpt-4.1-mini"]},
        content_type="application/json",
        headers={"authorization": f"Bearer {token}"},
    )
    assert edited.status_code == 200, edited.content
    assert json.loads(edited.content)["fallbackModels"] == ["gpt-4.1-mini"]

    def dearer():  # the fallback's rate raised after acceptance
        ModelRate.objects.filter(model=BACKUP).update(input_credits_per_million=Decimal(9000))

    await database_sync_to_async(dearer)()
    fake_llm.script(DOWN, DOWN, Scenario(chunks=["Queued answer."], usage=(700, 30)))
    assert await run_queued_message(message_id) == "done"
    assert [r["model"] for r in fake_llm.requests] == [PRIMARY, PRIMARY, BACKUP]  # the list of acceptance

    def check():
        entries, holds, reserved = _billing(org)
        frozen = token_cost(
            input_tokens=700, output_tokens=30, input_per_million=Decimal(100), output_per_million=Decimal(500)
        )
        assert entries == [(BACKUP, 700, 30, -frozen)]
        assert holds == [(PRIMARY, "released"), (PRIMARY, "released"), (BACKUP, "settled")]
        assert reserved == 0
        message = Message.all_orgs.get(pk=message_id)
        assert (message.status, message.model) == ("completed", BACKUP)
        assert [m["model"] for m in message.frozen_turn["models"]] == [PRIMARY, BACKUP]

    await database_sync_to_async(check)()


async def test_a_client_that_leaves_during_the_backoff_costs_nothing(team, fake_llm, monkeypatch):
    """Cancelled between two attempts (the failed one released, the next one held, nothing sent):
    every hold is given back."""
    import asyncio

    org, specialist, token = await _setup(team, fallback_models=[BACKUP])
    waiting = asyncio.Event()

    async def pause(*, seconds: float) -> None:
        waiting.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(fallbacks, "pause", pause)
    fake_llm.script(DOWN, Scenario(chunks=["never"]))
    task = asyncio.create_task(_stream(specialist, token))
    await asyncio.wait_for(waiting.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    def check():
        entries, holds, reserved = _billing(org)
        assert (entries, holds, reserved) == ([], [(PRIMARY, "released"), (PRIMARY, "released")], 0)
        assert _message(org).error_code == "client_disconnected"

    await database_sync_to_async(check)()
