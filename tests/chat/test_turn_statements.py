"""The SQL a chat turn costs, statement by statement (transaction control not counted), counted in
every thread of the process: the turn's database work runs in executor threads. A follow-up turn
without tools costs 13 statements, a new session's first turn 11 (the budget is 13 for both, the
webhook outbox's one read included; 21 and 16 before the caller and their membership came in one
query and settlement locked the hold and its account in one, 17 and 15 before the hold and the
settlement became one statement each)."""

from __future__ import annotations

import asyncio
import re

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from accounts.services import issue_tokens
from tests.conftest import add_member, make_org, make_specialist
from tests.fakes.llm_server import Scenario

pytestmark = pytest.mark.django_db(transaction=True)

# Transaction control: not counted, but kept to check (no savepoint in a turn; a live start's
# commit does not wait for the disk).
CONTROL = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|SET LOCAL)\b")
FAST_START = "SET LOCAL synchronous_commit = off"

BUDGET = 13

FOLLOW_UP = [
    "SELECT orgs_membership",  # the caller: the token's user and their membership (with user and org)
    "SELECT specialists_specialist",  # the specialist, and whether it has tools at all
    "SELECT chat_chatsession",  # the session, readable by the caller
    "SELECT billing_modelrate",  # the model's rates and context window (the turn's, for all its calls)
    "INSERT chat_message",  # the user's and the assistant's messages, one insert
    "UPDATE chat_chatsession",  # message count and last message time
    "SELECT chat_message",  # the history (with whether each message has attachments)
    # the hold, one statement: the account's reserved += worst case if the circuit is closed, the
    # available balance covers it and the budget is not used up (the row locked for that alone), and
    # the hold itself
    "INSERT billing_reservation",
    # settlement, one statement: the hold and its account locked, in that order; balance, reserved and
    # spend this period; the usage entry; the hold settled
    "UPDATE billing_reservation",
    "UPDATE chat_message",  # the answer, its usage and status
    "UPDATE chat_chatsession",  # the session's last message time
    "SELECT webhooks_webhook",  # the outbox: does a webhook of the org take turn.completed (no: nothing more)
]


def _label(sql: str) -> str:
    outer = sql
    while (stripped := re.sub(r"\([^()]*\)", "", outer)) != outer:  # subqueries out: the statement's own table
        outer = stripped
    outer = re.sub(r"^WITH (\w+ AS\s*,?\s*)+", "", outer)  # a statement with CTEs: its main statement's
    table = re.search(r'(?:FROM|INTO|UPDATE) "?(\w+)"?', outer)
    return f"{outer.split(None, 1)[0]} {table.group(1) if table else '?'}"


async def _turn(
    client: AsyncClient, token: str, specialist, recorded, session_id: str | None = None
) -> tuple[list[str], str]:
    body = {"specialistId": str(specialist.pk), "message": "Plan our Q3 budget"}
    if session_id:
        body["sessionId"] = session_id
    recorded.clear()
    response = await client.post(
        "/api/chat/stream",
        body,
        content_type="application/json",
        headers={"accept": "text/event-stream", "authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert "event: done" in text, text
    return recorded.snapshot(), text.split('"sessionId":"', 1)[1].split('"', 1)[0]


async def test_a_turn_costs_these_statements(bundled_data, recorded):
    def setup():
        org = make_org(name="Counted")
        member = add_member(org)
        return make_specialist(org), issue_tokens(user=member).access

    specialist, token = await database_sync_to_async(setup)()
    client = AsyncClient()
    first, session_id = await _turn(client, token, specialist, recorded)
    follow_up, _ = await _turn(client, token, specialist, recorded, session_id)
    assert follow_up == FOLLOW_UP, follow_up
    # a new session: created (one insert instead of a read and a count-up), and no history to read
    new_session = [label for label in FOLLOW_UP if label not in ("SELECT chat_chatsession", "SELECT chat_message")]
    new_session[new_session.index("UPDATE chat_chatsession")] = "INSERT chat_chatsession"
    assert sorted(first) == sorted(new_session), first
    assert len(follow_up) <= BUDGET
    assert len(first) <= BUDGET
    # No savepoint anywhere (two round trips each); the start's commit does not wait for the disk,
    # the end's does (and makes the start durable with it).
    control = [sql for sql in recorded.everything if CONTROL.match(sql)]
    assert control == [FAST_START], control
    assert recorded.everything.index(FAST_START) < recorded.everything.index("UPDATE billing_reservation")


@pytest.mark.parametrize("fast", [True, False])
async def test_only_a_live_turns_start_skips_waiting_for_the_disk(bundled_data, everything, settings, fast):
    """A queued turn's start was promised to its client (202): its commit waits for the disk. So
    does every start with DB_FAST_TURN_START off."""
    settings.DB_FAST_TURN_START = fast

    def setup():
        org = make_org(name="Durable")
        member = add_member(org)
        return make_specialist(org), issue_tokens(user=member).access

    specialist, token = await database_sync_to_async(setup)()
    headers = {"authorization": f"Bearer {token}"}
    body = {"specialistId": str(specialist.pk), "message": "Plan our Q3 budget"}
    client = AsyncClient()
    everything.clear()
    response = await client.post("/api/chat/async", body, content_type="application/json", headers=headers)
    assert response.status_code == 202, response.content
    assert FAST_START not in everything
    response = await client.post(
        "/api/chat/stream", body, content_type="application/json", headers={**headers, "accept": "text/event-stream"}
    )
    assert response.status_code == 200, response.content
    assert "event: done" in b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert everything.count(FAST_START) == (1 if fast else 0)


async def test_a_database_failure_after_the_stream_started_still_bills_and_ends_the_stream(bundled_data, monkeypatch):
    """The answer cannot be recorded (the database is briefly unavailable): the stream ends at once
    with `service_unavailable`, and the failure is written once the database answers again (a
    thread of its own tries it again): the call billed once, nothing held, the message failed. So
    also for a turn that failed otherwise when writing its failure meets an outage."""
    from django.db import OperationalError

    from billing.models import CreditAccount, LedgerEntry
    from chat import pipeline
    from chat.models import Message

    def setup():
        org = make_org(name="Outage")
        member = add_member(org)
        return org, make_specialist(org), issue_tokens(user=member).access

    org, specialist, token = await database_sync_to_async(setup)()

    async def unavailable(*args, **kwargs):
        raise OperationalError("couldn't get a connection after 10.00 sec")

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    def recorded() -> tuple:
        account = CreditAccount.all_orgs.get(organization=org)
        failed = Message.all_orgs.filter(session__organization=org, role="assistant", status="failed")
        billed = LedgerEntry.all_orgs.filter(organization=org, kind="usage").count()
        return account.reserved, billed, sorted(failed.values_list("error_code", flat=True))

    async def once_recorded(turns: int) -> tuple:
        for _ in range(100):  # the thread's first try comes half a second after the turn ended
            found = await database_sync_to_async(recorded)()
            if len(found[2]) == turns:
                return found
            await asyncio.sleep(0.1)
        return found

    monkeypatch.setattr(pipeline, "_bill_and_complete_message", unavailable)
    client = AsyncClient()
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {token}"}
    body = {"specialistId": str(specialist.pk), "message": "Plan our Q3 budget"}
    response = await client.post("/api/chat/stream", body, content_type="application/json", headers=headers)
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert text.rstrip().endswith(
        '"code":"service_unavailable","detail":"The service is briefly unavailable. Try again shortly."}'
    ), text
    assert await once_recorded(1) == (0, 1, ["service_unavailable"])  # billed once, nothing held

    monkeypatch.setattr(pipeline, "_bill_and_complete_message", broken)  # the turn fails for another reason…
    monkeypatch.setattr(pipeline, "_bill_and_fail_message", unavailable)  # …and writing that meets an outage
    response = await client.post("/api/chat/stream", body, content_type="application/json", headers=headers)
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert '"code":"llm_unavailable"' in text.rstrip().rpartition("event: error")[2], text
    assert await once_recorded(2) == (0, 2, ["llm_unavailable", "service_unavailable"])


@pytest.mark.parametrize("deltas", [3, 30])
async def test_a_turn_hops_to_a_thread_once_per_phase_however_long_the_answer(
    bundled_data, fake_llm, deltas, thread_hops
):
    """The stream's own database work is two thread hops, prepare and record, whatever the number of
    tokens: no event waits on sync code while tokens flow."""

    def setup():
        org = make_org(name="Hops")
        member = add_member(org)
        return make_specialist(org, model="gpt-4o-mini"), issue_tokens(user=member).access

    specialist, token = await database_sync_to_async(setup)()
    fake_llm.script(Scenario(chunks=[f"t{i} " for i in range(deltas)]))
    thread_hops.clear()  # the setup's own
    response = await AsyncClient().post(
        "/api/chat/stream",
        {"specialistId": str(specialist.pk), "message": "Hi"},
        content_type="application/json",
        headers={"accept": "text/event-stream", "authorization": f"Bearer {token}"},
    )
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert text.count("event: delta") == deltas, text
    assert "event: done" in text
    ours = [name for name in thread_hops if "prepare" in name or "message" in name or "hold_next" in name]
    assert ours == ["ChatStreamView.prepare_stream", "bill_and_complete_message"], thread_hops
    assert len(thread_hops) <= 6, thread_hops  # Django's own per-request signals are the rest, never one per token
