"""A call we cut off after sending it (the client left, `onDisconnect: cancel`) is billed: the
provider accepted the prompt and bills it. With no usage reported, the bill is the input's likely
count plus the output produced. A call that failed before any output with no usage reported (a
5xx) costs nothing. Through a real Daphne server and the fake provider."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import Message
from chat.providers.base import ChatMessage, ProviderRequest, request_tokens_estimate
from tests.conftest import make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def streamer(daphne_server, bundled_data):
    org = make_org(name="Leavers")
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner_of(org)).access
    with httpx.Client(base_url=daphne_server.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as client:
        yield org, specialist, client


def _ended(org) -> Message:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        message = Message.all_orgs.filter(role="assistant", session__organization=org).first()
        if message is not None and message.status not in ("queued", "running"):
            return message
        time.sleep(0.05)
    raise AssertionError("the turn did not end")


def _as_sent(body: dict) -> ProviderRequest:
    """The request the provider received, back in the pipeline's terms (to state its likely size)."""
    system, *rest = body["messages"]
    return ProviderRequest(
        model=body["model"],
        system=system["content"],
        messages=[ChatMessage(role=m["role"], content=m["content"]) for m in rest],
        max_output_tokens=body["max_completion_tokens"],
    )


def test_a_client_that_leaves_before_the_first_token_pays_for_the_prompt_sent(streamer, fake_llm):
    """The attack: send a long prompt, wait until the provider has it (and bills it), leave before
    the first token. The hold used to be released: the prompt was free."""
    org, specialist, client = streamer
    prompt = "Summarize the annual report in detail. " * 200
    fake_llm.script(Scenario(chunks=["Too", " late."], delay=2.5))  # within the idle timeout (3 s)
    body = json.dumps({"specialistId": str(specialist.pk), "message": prompt}).encode()
    url = httpx.URL(str(client.base_url))
    head = (
        f"POST /api/chat/stream HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: {client.headers['authorization']}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port)) as sock:  # a client that never sees a byte
        sock.sendall(head.encode() + body)
        deadline = time.monotonic() + 10
        while not fake_llm.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake_llm.requests, "the call never reached the provider"
    # the client left before the first token (the first frames wait for it)
    assert fake_llm.closed_early.wait(10)  # the provider call was cut off
    message = _ended(org)
    assert (message.status, message.error_code, message.content) == ("failed", "client_disconnected", "")
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    expected_input = request_tokens_estimate(_as_sent(fake_llm.requests[-1]))
    assert (entry.input_tokens, entry.output_tokens) == (expected_input, 0)
    assert expected_input > len(prompt) // 4  # the prompt's likely count, not nothing
    assert entry.amount < 0
    assert message.credits == -entry.amount
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_a_provider_error_before_any_output_costs_nothing(streamer, fake_llm):
    org, specialist, client = streamer
    fake_llm.script(Scenario(status=503), Scenario(status=503))  # the SDK retries once
    response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "hi"})
    assert response.status_code == 502
    assert response.json()["code"] == "llm_unavailable"
    message = _ended(org)
    assert (message.status, message.error_code) == ("failed", "llm_unavailable")
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()
    assert set(Reservation.all_orgs.filter(organization=org).values_list("status", flat=True)) == {"released"}
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_a_client_that_leaves_mid_answer_pays_for_the_prompt_and_what_was_produced(streamer, fake_llm):
    org, specialist, client = streamer
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(40)], delay=0.1, usage=(1000, 99999)))
    with client.stream("POST", "/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "go"}) as r:
        deltas = 0
        for line in r.iter_lines():
            deltas += line == "event: delta"
            if deltas == 3:
                break
    assert fake_llm.closed_early.wait(10)
    message = _ended(org)
    assert message.error_code == "client_disconnected"
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.input_tokens == request_tokens_estimate(_as_sent(fake_llm.requests[-1]))
    assert 0 < entry.output_tokens < 40  # what was produced, not the 99,999 never reported
