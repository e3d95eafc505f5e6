"""POST /api/chat/stream through a real Daphne server, with the openai provider against the fake
OpenAI server (official SDK) and the offline local model."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
import pytest

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import ChatSession, Message
from tests.conftest import make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario

pytestmark = pytest.mark.django_db(transaction=True)


def parse_sse(text: str) -> list[tuple[str, str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return events


@pytest.fixture
def setup(daphne_server, fake_llm, bundled_data):
    org = make_org(name="Streamers")
    owner = owner_of(org)
    token = issue_tokens(user=owner).access
    client = httpx.Client(base_url=daphne_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield org, owner, client
    client.close()


def test_full_turn_is_streamed_persisted_and_billed_exactly(setup, fake_llm):
    org, _owner, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=1000)
    fake_llm.script(Scenario(chunks=["The ", "answer ", "is 42."], usage=(1000, 500)))
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "What is it?"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = parse_sse(response.text)
    names = [name for _, name, _ in events]
    assert names == ["session", "delta", "delta", "delta", "usage", "done"]
    assert [eid for eid, _, _ in events] == [str(i) for i in range(1, 7)]
    session = events[0][2]
    assert set(session) == {"sessionId", "userMessageId", "messageId"}
    # gpt-4o-mini: 15 in / 60 out per million → 1000×15/1e6 + 500×60/1e6 = 0.045
    assert events[4][2] == {
        "inputTokens": 1000,
        "outputTokens": 500,
        "credits": "0.045000",
        "balance": "99.955000",
        "model": "gpt-4o-mini",
    }
    assert events[5][2] == {"messageId": session["messageId"], "finishReason": "stop"}
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.balance == Decimal("99.955000")
    assert account.reserved == 0
    usage = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert usage.amount == Decimal("-0.045000")
    assert str(usage.session_id) == session["sessionId"]
    assert usage.specialist_id == specialist.pk
    message = Message.all_orgs.get(pk=session["messageId"])
    assert (message.status, message.content, message.credits) == ("completed", "The answer is 42.", Decimal("0.045"))
    chat = ChatSession.all_orgs.get(pk=session["sessionId"])
    assert chat.title == "What is it?"
    assert chat.message_count == 2
    # the model got the instructions and the message
    sent = fake_llm.requests[-1]
    assert sent["messages"][0]["role"] == "system"
    assert "Be precise." in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "What is it?"}
    assert sent["max_completion_tokens"] == 1000
    # a follow-up in the same session carries the history
    fake_llm.script(Scenario(chunks=["Still 42."], usage=(10, 5)))
    follow = client.post(
        "/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": "Sure?", "sessionId": session["sessionId"]},
    )
    assert parse_sse(follow.text)[0][2]["sessionId"] == session["sessionId"]
    assert [m["content"] for m in fake_llm.requests[-1]["messages"][1:]] == [
        "What is it?",
        "The answer is 42.",
        "Sure?",
    ]


def test_events_are_delivered_incrementally(setup, fake_llm):
    org, _, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(chunks=["a", "b", "c", "d", "e"], delay=0.4))
    arrivals: list[tuple[str, float]] = []
    started = time.monotonic()
    with client.stream("POST", "/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "hi"}) as r:
        for line in r.iter_lines():
            if line.startswith("event: "):
                arrivals.append((line[7:], time.monotonic() - started))
    deltas = [t for name, t in arrivals if name == "delta"]
    done = next(t for name, t in arrivals if name == "done")
    assert len(deltas) == 5
    # not buffered: the first delta arrives while the provider is still producing the rest
    assert done - deltas[0] > 1.0


def test_local_model_turn(setup):
    org, _, client = setup
    specialist = make_specialist(org, model="local")
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "Plan Q3"})
    events = parse_sse(response.text)
    text = "".join(data["text"] for _, name, data in events if name == "delta")
    assert text.startswith("[local offline model]")
    usage = next(data for _, name, data in events if name == "usage")
    expected = Decimal(usage["inputTokens"]) * 1 / 10**6 + Decimal(usage["outputTokens"]) * 2 / 10**6
    assert Decimal(usage["credits"]) == expected.quantize(Decimal("0.000001"))


def test_provider_down_before_any_output_is_a_502_problem_and_bills_nothing(setup, fake_llm):
    org, _, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(status=500), Scenario(status=500))
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "hi"})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "llm_unavailable"
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    message = Message.all_orgs.get(role="assistant", session__organization=org)
    assert (message.status, message.error_code) == ("failed", "llm_unavailable")


def test_dropped_stream_ends_with_usage_then_error_and_bills_what_was_produced(setup, fake_llm):
    org, _, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(chunks=["one ", "two ", "three ", "four"], drop_after=2))
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "count"})
    assert response.status_code == 200
    events = parse_sse(response.text)
    assert [name for _, name, _ in events] == ["session", "delta", "delta", "usage", "error"]
    assert events[-1][2]["code"] == "llm_unavailable"
    usage = events[-2][2]
    assert usage["outputTokens"] == 2  # "one two " is 8 characters ≈ 2 tokens
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.amount == -Decimal(usage["credits"])
    message = Message.all_orgs.get(pk=events[0][2]["messageId"])
    assert (message.status, message.content) == ("failed", "one two ")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_a_provider_that_hangs_mid_stream_is_given_up_and_what_it_produced_is_billed(setup, fake_llm):
    """Two tokens, then silence with the connection open: after LLM_IDLE_TIMEOUT (3 s for the test
    servers) the call is given up, the stream ends with `usage` and `error`, the produced tokens
    are billed once, the hold is released and the provider's connection is closed."""
    org, _, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(chunks=["one ", "two ", "three ", "four"], hang_after=2))
    started = time.monotonic()
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "count"})
    assert response.status_code == 200
    assert time.monotonic() - started < 20
    events = parse_sse(response.text)
    assert [name for _, name, _ in events] == ["session", "delta", "delta", "usage", "error"]
    assert events[-1][2]["code"] == "llm_unavailable"
    assert "LLM_IDLE_TIMEOUT" in events[-1][2]["detail"]
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.amount == -Decimal(events[-2][2]["credits"])
    assert entry.output_tokens == 2
    message = Message.all_orgs.get(pk=events[0][2]["messageId"])
    assert (message.status, message.content, message.error_code) == ("failed", "one two ", "llm_unavailable")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert fake_llm.closed_early.wait(5)  # the server hung up on the silent provider


def test_a_provider_that_never_answers_is_a_problem_before_the_stream(setup, fake_llm):
    """Headers, then nothing, twice (the call is retried once before any output): a problem, no cost."""
    org, _, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    silent = Scenario(chunks=["never"], hang_after=0)  # headers, then nothing
    fake_llm.script(silent, silent)
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "hello?"})
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "llm_unavailable"
    assert "gpt-4o-mini (timeout, timeout)" in response.json()["detail"]
    assert len(fake_llm.requests) == 2
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()
    assert set(Reservation.all_orgs.filter(organization=org).values_list("status", flat=True)) == {"released"}
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    message = Message.all_orgs.get(role="assistant", session__organization=org)
    assert (message.status, message.error_code) == ("failed", "llm_unavailable")


def test_client_disconnect_stops_the_provider_and_bills_only_what_was_produced(setup, fake_llm):
    org, _, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(40)], delay=0.1, usage=(1000, 99999)))
    with client.stream("POST", "/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "go"}) as r:
        seen = 0
        for line in r.iter_lines():
            if line == "event: delta":
                seen += 1
                if seen == 3:
                    break
    disconnected_at = time.monotonic()  # leaving the block closed the connection mid-stream
    stopped = fake_llm.closed_early.wait(timeout=10)  # the fake provider saw its client go away
    latency = time.monotonic() - disconnected_at
    assert stopped, "the provider call was not stopped"
    assert latency <= 1.0, f"the provider call was cancelled {latency:.2f} s after the client went away"
    deadline = time.monotonic() + 10
    message = None
    while time.monotonic() < deadline:
        message = Message.all_orgs.filter(role="assistant", session__organization=org).first()
        if message and message.status != "running":
            break
        time.sleep(0.05)
    assert message.status == "failed"
    assert message.error_code == "client_disconnected"  # the contract's word for it
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.output_tokens < 40  # not the 99999 the provider would have reported at the end
    assert Reservation.all_orgs.filter(organization=org, status="active").count() == 0


def test_stream_idempotency_replays_json_instead_of_a_second_stream(setup):
    org, _, client = setup
    specialist = make_specialist(org, model="local")
    payload = {"specialistId": str(specialist.pk), "message": "once"}
    first = client.post("/api/chat/stream", json=payload, headers={"Idempotency-Key": "k-1"})
    assert first.headers["content-type"].startswith("text/event-stream")
    session = parse_sse(first.text)[0][2]
    again = client.post("/api/chat/stream", json=payload, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.headers["content-type"].startswith("application/json")
    assert again.json() == {"sessionId": session["sessionId"], "messageId": session["messageId"], "status": "completed"}
    assert Message.all_orgs.filter(role="assistant", session__organization=org).count() == 1
    other = client.post("/api/chat/stream", json={**payload, "message": "twice"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"


def _mcp_specialist(org, mcp_server, model):
    from mcps.models import Connection
    from mcps.services import sync_connection

    connection = Connection.all_orgs.create(
        organization=org, name="Calc", url=mcp_server.url("streamable_http"), transport="streamable_http"
    )
    sync_connection(connection=connection)
    specialist = make_specialist(org, model=model)
    specialist.tools.set(connection.tools.filter(name__in=["add", "explode"]))
    return specialist, connection


def test_a_turn_that_calls_an_mcp_tool(setup, fake_llm, mcp_server):
    org, _, client = setup
    specialist, connection = _mcp_specialist(org, mcp_server, "gpt-4o-mini")
    fake_llm.script(
        Scenario(
            chunks=[], tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 40}}], usage=(100, 20)
        ),
        Scenario(chunks=["It is ", "42."], usage=(150, 10)),
    )
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "add 2 and 40"})
    events = parse_sse(response.text)
    assert [name for _, name, _ in events] == ["session", "tool_call", "tool_result", "delta", "delta", "usage", "done"]
    call, result = events[1][2], events[2][2]
    assert call == {"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 40}, "connectionId": str(connection.pk)}
    assert (result["id"], result["result"], result["isError"]) == ("call_1", "42", False)
    assert result["durationMs"] >= 0
    # one turn = the sum of its two model calls: (100+150)×15/1e6 + (20+10)×60/1e6 = 0.00555
    assert events[5][2]["inputTokens"] == 250
    assert events[5][2]["credits"] == "0.005550"
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 2
    # the offered tools and the fed-back result reached the model
    first, second = fake_llm.requests[-2], fake_llm.requests[-1]
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["add", "explode"]
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    message = Message.all_orgs.get(pk=events[0][2]["messageId"])
    assert message.content == "It is 42."
    assert message.tool_calls[0]["result"] == "42"
    assert message.tool_calls[0]["arguments"] == {"a": 2, "b": 40}
    # the second call's hold was taken once the tool's result was part of its input
    first_hold, second_hold = Reservation.all_orgs.filter(message_id=message.pk).order_by("created_at")
    assert second_hold.amount > first_hold.amount
    assert {first_hold.status, second_hold.status} == {Reservation.Status.SETTLED}


def test_a_failing_tool_is_reported_to_the_model_and_the_chat_goes_on(setup, fake_llm, mcp_server):
    org, _, client = setup
    specialist, _ = _mcp_specialist(org, mcp_server, "gpt-4o-mini")
    fake_llm.script(
        Scenario(
            chunks=[],
            tool_calls=[
                {"id": "c1", "name": "explode", "arguments": {}},
                {"id": "c2", "name": "nope", "arguments": {}},
            ],
        ),
        Scenario(chunks=["Sorry, the tool failed."]),
    )
    events = parse_sse(client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "go"}).text)
    results = [data for _, name, data in events if name == "tool_result"]
    assert [r["isError"] for r in results] == [True, True]
    assert events[-1][1] == "done"


def test_the_local_model_uses_an_mcp_tool(setup, mcp_server):
    org, _, client = setup
    specialist, _ = _mcp_specialist(org, mcp_server, "local")
    events = parse_sse(
        client.post(
            "/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "please add a=2 b=40"}
        ).text
    )
    names = [name for _, name, _ in events]
    assert names[:3] == ["session", "tool_call", "tool_result"]
    assert events[2][2]["result"] == "42"
    text = "".join(data["text"] for _, name, data in events if name == "delta")
    assert "42" in text
    assert names[-1] == "done"


def test_the_local_model_saves_an_artifact_in_a_workspace(setup):
    from chat.models import Artifact
    from workspaces.models import Workspace

    org, owner, client = setup
    workspace = Workspace.all_orgs.create(organization=org, name="W", created_by=owner)
    specialist = make_specialist(org, model="local")
    response = client.post(
        "/api/chat/stream",
        json={
            "specialistId": str(specialist.pk),
            "message": "please save_artifact title=Q3 content=Budget",
            "workspaceId": str(workspace.pk),
        },
    )
    events = parse_sse(response.text)
    call = next(data for _, name, data in events if name == "tool_call")
    assert (call["name"], call["connectionId"]) == ("save_artifact", None)
    result = next(data for _, name, data in events if name == "tool_result")
    assert result["isError"] is False
    artifact = Artifact.all_orgs.get(workspace=workspace)
    assert (artifact.title, artifact.content, artifact.specialist_id) == ("Q3", "Budget", specialist.pk)
    assert str(artifact.session_id) == events[0][2]["sessionId"]


def test_a_nul_in_the_answer_is_stored_and_billed(setup, fake_llm):
    """PostgreSQL stores no NUL in text or JSON: a model (or a tool) that sends one must not leave
    the turn unrecorded and its call unbilled."""
    org, _owner, client = setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(chunks=["a\x00", "b"], usage=(10, 2)))
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "Hi"})
    events = parse_sse(response.text)
    assert [name for _, name, _ in events] == ["session", "delta", "delta", "usage", "done"]
    message = Message.all_orgs.get(pk=events[0][2]["messageId"])
    assert (message.status, message.content) == ("completed", "a\ufffdb")
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 1
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_the_tool_round_limit_ends_the_turn_cleanly_and_bills_every_round_exactly(setup, fake_llm, mcp_server):
    """A model that asks for a tool in every answer: after 8 model calls the turn ends with
    `max_rounds` (the eighth call's tools are not run), and each of the 8 calls is billed once."""
    org, _, client = setup
    specialist, _ = _mcp_specialist(org, mcp_server, "gpt-4o-mini")
    call = {"id": "call_n", "name": "add", "arguments": {"a": 1, "b": 1}}
    fake_llm.script(*[Scenario(chunks=[], tool_calls=[call], usage=(100, 20)) for _ in range(8)])
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "loop"})
    events = parse_sse(response.text)
    names = [name for _, name, _ in events]
    assert names.count("tool_result") == 7
    assert names[-2:] == ["usage", "done"]
    assert events[-1][2]["finishReason"] == "max_rounds"
    # 8 × (100 × 15 + 20 × 60) / 1e6 = 0.0216
    assert events[-2][2]["credits"] == "0.021600"
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 8
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()


def test_a_later_rounds_hold_refused_ends_the_turn_and_bills_only_the_first_call(setup, fake_llm, mcp_server):
    """The first call fits the balance; the second, whose input now carries a long tool result,
    does not: the stream ends with `usage` and a 402-coded `error`, the first call is billed once,
    nothing stays held."""
    from billing.services import adjust_credits
    from mcps.models import Connection

    org, _, client = setup
    specialist, _ = _mcp_specialist(org, mcp_server, "gpt-4o-mini")
    specialist.tools.add(*Connection.all_orgs.get(organization=org).tools.filter(name="echo"))
    specialist.max_output_tokens = 10_000  # each hold: 10,000 × 60 / 1e6 = 0.6 credits, plus its input
    specialist.save()
    adjust_credits(org=org, amount=Decimal("-99.35"), kind="adjustment", reason="leave 0.65")
    long_text = "x" * 40_000  # ~10,000 tokens in the arguments and again in the result
    fake_llm.script(
        Scenario(
            chunks=[], tool_calls=[{"id": "c1", "name": "echo", "arguments": {"text": long_text}}], usage=(100, 20)
        ),
        Scenario(chunks=["never"], usage=(1, 1)),
    )
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "echo"})
    events = parse_sse(response.text)
    names = [name for _, name, _ in events]
    assert names[-2:] == ["usage", "error"], names
    assert events[-1][2]["code"] == "insufficient_credits"
    assert events[-2][2]["credits"] == "0.002700"  # the first call: 100 × 15 / 1e6 + 20 × 60 / 1e6
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.amount == Decimal("-0.002700")
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.reserved == 0
    assert account.balance == Decimal("0.65") - Decimal("0.0027")
    assert len(fake_llm.requests) == 1  # the second call never reached the model
    message = Message.all_orgs.get(pk=events[0][2]["messageId"])
    assert (message.status, message.error_code) == ("failed", "insufficient_credits")
