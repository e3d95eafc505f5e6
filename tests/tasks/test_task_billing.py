"""Task runs and money, and task runs and watchers: a run is billed exactly once at the usage the
provider reported, its hold is always given back (a failure before any output bills nothing, one
mid-stream bills what was produced, as a chat turn does), and its events reach a WebSocket watcher
of the run's session (the session id is in the run's 202 response and in the task)."""

from __future__ import annotations

import asyncio
import json
import threading
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from chat.models import Message
from leancore.asgi import application
from tasks.jobs import run_task_turn
from tasks.models import Task
from tests.conftest import client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import Daphne, redis_url_for_tests, run_worker_batch, server_env

pytestmark = pytest.mark.django_db(transaction=True)

MICRO = Decimal("0.000001")
MILLION = Decimal(1_000_000)


def expected_cost(input_tokens: int, output_tokens: int, rate: ModelRate) -> Decimal:
    """The contract's arithmetic, written out here: per-million rates, half up to 6 decimals."""
    raw = (
        Decimal(input_tokens) * rate.input_credits_per_million / MILLION
        + Decimal(output_tokens) * rate.output_credits_per_million / MILLION
    )
    return raw.quantize(MICRO, rounding=ROUND_HALF_UP)


def account_of(org) -> CreditAccount:
    return CreditAccount.all_orgs.get(organization=org)


@pytest.fixture
def runner(bundled_data, fake_llm):
    org = make_org(name="Task Payer")
    owner = owner_of(org)
    return org, owner, client_for(owner)


def start_run(client, specialist, title: str = "Summarize Q3") -> dict:
    """Creates a todo task for the specialist and runs it: the 202 body (taskId, sessionId, messageId)."""
    task = client.post("/tasks", {"title": title, "assigneeSpecialistId": str(specialist.pk)}, format="json")
    assert task.status_code == 201, task.content
    started = client.post(f"/tasks/{task.json()['id']}/run")
    assert started.status_code == 202, started.content
    return started.json()


def run_job(body: dict) -> str:
    """What the worker runs for the queued task (the job's own function, on this thread)."""
    return async_to_sync(run_task_turn.func)(body["taskId"], body["messageId"])


def assert_nothing_held(org) -> None:
    assert account_of(org).reserved == Decimal(0)
    assert not Reservation.all_orgs.filter(organization=org, status=Reservation.Status.ACTIVE).exists()


# --- 1. a run is billed exactly, once ----------------------------------------------------------------


def test_a_task_run_is_billed_exactly_once_at_the_usage_the_provider_reported(runner, fake_llm):
    org, _, client = runner
    # rates with digits past the sixth decimal, so that the charge has to be rounded (half up)
    rate = ModelRate.objects.create(
        model="task-test-model",
        provider="openai",
        display_name="Task test",
        input_credits_per_million=Decimal("0.37"),
        output_credits_per_million=Decimal("1.13"),
        context_window=128_000,
        max_output_tokens=4096,
    )
    specialist = make_specialist(org, model=rate.model)
    fake_llm.script(Scenario(chunks=["Q3 ", "was ", "good."], usage=(12_345, 678)))
    before = account_of(org).balance
    body = start_run(client, specialist)

    # queued: the worst case is held for this run's message, nothing is charged yet
    hold = Reservation.all_orgs.get(message_id=body["messageId"])
    assert hold.status == Reservation.Status.ACTIVE
    assert account_of(org).reserved == hold.amount > 0
    assert account_of(org).balance == before

    assert run_job(body) == "done"

    # 12345 × 0.37 / 1e6 + 678 × 1.13 / 1e6 = 0.00456765 + 0.00076614 = 0.00533379 → 0.005334
    cost = expected_cost(12_345, 678, rate)
    assert cost == Decimal("0.005334")
    entry = LedgerEntry.all_orgs.get(organization=org, kind=LedgerEntry.Kind.USAGE)  # one, not two
    assert isinstance(entry.amount, Decimal)
    assert entry.amount == -cost
    assert (entry.input_tokens, entry.output_tokens, entry.model) == (12_345, 678, "task-test-model")
    assert (str(entry.message_id), str(entry.session_id), entry.specialist_id) == (
        body["messageId"],
        body["sessionId"],
        specialist.pk,
    )
    account = account_of(org)
    assert account.balance == before - cost
    assert entry.balance_after == account.balance
    assert account.period_spent == cost
    assert_nothing_held(org)
    hold.refresh_from_db()
    assert (hold.status, hold.charged, hold.ledger_entry_id) == (Reservation.Status.SETTLED, cost, entry.pk)

    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.content, message.credits) == ("completed", "Q3 was good.", cost)
    assert (message.input_tokens, message.output_tokens) == (12_345, 678)
    task = client.get(f"/tasks/{body['taskId']}").json()
    assert (task["status"], task["result"], task["error"]) == ("done", "Q3 was good.", None)
    assert len(fake_llm.requests) == 1

    # the worker runs the job again (a retry after a crash): nothing is called or charged twice
    assert run_job(body) == "skipped"
    assert LedgerEntry.all_orgs.filter(organization=org, kind=LedgerEntry.Kind.USAGE).count() == 1
    assert account_of(org).balance == before - cost
    assert len(fake_llm.requests) == 1
    assert Task.all_orgs.get(pk=body["taskId"]).status == Task.Status.DONE


def test_each_run_of_two_tasks_is_its_own_single_charge(runner, fake_llm):
    org, _, client = runner
    rate = ModelRate.objects.get(model="gpt-4o-mini")  # 15 in / 60 out per million
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(usage=(1000, 500)), Scenario(usage=(2000, 100)))
    before = account_of(org).balance
    first, second = start_run(client, specialist, "First"), start_run(client, specialist, "Second")
    assert run_job(first) == run_job(second) == "done"
    charges = {
        str(e.message_id): e.amount for e in LedgerEntry.all_orgs.filter(organization=org, kind=LedgerEntry.Kind.USAGE)
    }
    assert charges == {first["messageId"]: Decimal("-0.045000"), second["messageId"]: Decimal("-0.036000")}
    assert charges[first["messageId"]] == -expected_cost(1000, 500, rate)
    assert charges[second["messageId"]] == -expected_cost(2000, 100, rate)
    assert account_of(org).balance == before - Decimal("0.081000")
    assert_nothing_held(org)


# --- 2. a run's events reach a WebSocket watcher of its session -----------------------------------------


async def _frames_until_the_end(communicator: WebsocketCommunicator) -> list[dict]:
    frames = []
    while not frames or frames[-1]["event"] not in ("done", "error"):
        out = await communicator.receive_output(timeout=15)
        assert out["type"] == "websocket.send", (out, frames)
        frames.append(json.loads(out["text"]))
    return frames


async def _watch_a_run(runner) -> tuple[dict, list[dict]]:
    """Starts a run over HTTP, opens a socket on the session its 202 names, then runs the job on a
    worker thread (the embedded worker: the in-process layer carries its events to the socket)."""
    org, owner, client = runner
    specialist = await database_sync_to_async(lambda: make_specialist(org, model="gpt-4o-mini"))()
    body = await database_sync_to_async(lambda: start_run(client, specialist))()
    task = await database_sync_to_async(lambda: client.get(f"/tasks/{body['taskId']}").json())()
    assert task["sessionId"] == body["sessionId"]  # a client that only reads the task learns it too
    token = await database_sync_to_async(lambda: issue_tokens(user=owner).access)()
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/sessions/{body['sessionId']}/", subprotocols=["bearer", token]
    )
    connected, _ = await communicator.connect()
    assert connected
    worker = threading.Thread(target=run_job, args=(body,))
    worker.start()
    try:
        frames = await _frames_until_the_end(communicator)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, worker.join)
        await communicator.disconnect()
    return body, frames


@pytest.mark.asyncio
async def test_a_watcher_of_the_runs_session_sees_the_whole_run(runner, fake_llm):
    fake_llm.script(Scenario(chunks=["Task ", "work ", "done."], usage=(40, 6)))
    body, frames = await _watch_a_run(runner)
    assert [f["event"] for f in frames] == ["session", "delta", "delta", "delta", "usage", "done"]
    prompt = await database_sync_to_async(Message.all_orgs.get)(session_id=body["sessionId"], role="user")
    assert "Summarize Q3" in prompt.content  # the task's prompt is the session's user message
    assert frames[0]["data"] == {
        "sessionId": body["sessionId"],
        "userMessageId": str(prompt.pk),
        "messageId": body["messageId"],
    }
    assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == "Task work done."
    # 40 × 15 / 1e6 + 6 × 60 / 1e6 = 0.00096, from the 100 signup credits
    assert frames[-2]["data"] == {
        "inputTokens": 40,
        "outputTokens": 6,
        "credits": "0.000960",
        "balance": "99.999040",
        "model": "gpt-4o-mini",
    }
    assert frames[-1]["data"] == {"messageId": body["messageId"], "finishReason": "stop"}
    task = await database_sync_to_async(Task.all_orgs.get)(pk=body["taskId"])
    assert (task.status, task.result) == (Task.Status.DONE, "Task work done.")


@pytest.mark.asyncio
async def test_a_watcher_sees_a_run_that_fails_mid_stream_end_with_usage_and_error(runner, fake_llm):
    fake_llm.script(Scenario(chunks=["one ", "two ", "three ", "four"], drop_after=2))
    body, frames = await _watch_a_run(runner)
    assert [f["event"] for f in frames] == ["session", "delta", "delta", "usage", "error"]
    assert frames[-1]["data"]["code"] == "llm_unavailable"
    entry = await database_sync_to_async(LedgerEntry.all_orgs.get)(message_id=body["messageId"], kind="usage")
    assert frames[-2]["data"]["credits"] == str(-entry.amount)
    task = await database_sync_to_async(Task.all_orgs.get)(pk=body["taskId"])
    assert task.status == Task.Status.TODO


def test_a_run_worked_by_a_worker_process_reaches_a_socket_on_daphne_over_redis(
    bundled_data, fake_llm, django_db_blocker
):
    """Production's shape: the run is started over HTTP on Daphne, a separate worker process runs
    it, and Redis carries its events to the socket the client opened on the session of the 202."""
    env = server_env(
        {"REDIS_URL": redis_url_for_tests(), "OPENAI_BASE_URL": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "x"}
    )
    with django_db_blocker.unblock():
        server = Daphne(env)
    try:
        org = make_org(name="Redis Tasks")
        owner = owner_of(org)
        specialist = make_specialist(org, model="gpt-4o-mini")
        task = (
            client_for(owner)
            .post("/tasks", {"title": "Plan", "assigneeSpecialistId": str(specialist.pk)}, format="json")
            .json()
        )
        token = issue_tokens(user=owner).access
        fake_llm.script(Scenario(chunks=["from ", "the ", "worker"], usage=(10, 3)))

        async def watch() -> tuple[dict, list[dict]]:
            async with httpx.AsyncClient(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as http:
                started = await http.post(f"/tasks/{task['id']}/run")
            assert started.status_code == 202, started.text
            body = started.json()
            ws_url = server.url.replace("http", "ws") + f"/ws/chat/sessions/{body['sessionId']}/"
            async with websockets.connect(ws_url, subprotocols=["bearer", token]) as socket:
                worker = asyncio.get_running_loop().run_in_executor(None, run_worker_batch, env)
                frames: list[dict] = []
                while not frames or frames[-1]["event"] not in ("done", "error"):
                    frames.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=60)))
                assert (await worker).returncode == 0
            return body, frames

        body, frames = async_to_sync(watch)()
    finally:
        server.stop()
    assert [f["event"] for f in frames] == ["session", "delta", "delta", "delta", "usage", "done"]
    assert frames[0]["data"]["messageId"] == body["messageId"]
    assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == "from the worker"
    assert frames[-2]["data"]["credits"] == "0.000330"  # 10 × 15 / 1e6 + 3 × 60 / 1e6
    assert Task.all_orgs.get(pk=task["id"]).status == Task.Status.DONE
    assert LedgerEntry.all_orgs.get(organization=org, kind="usage").amount == Decimal("-0.000330")
    assert_nothing_held(org)


# --- 3. a failed run gives its hold back ------------------------------------------------------------------


def test_a_run_that_fails_before_any_output_bills_nothing_and_releases_its_hold(runner, fake_llm):
    org, _, client = runner
    specialist = make_specialist(org, model="gpt-4o-mini")
    before = account_of(org).balance
    body = start_run(client, specialist)
    hold = Reservation.all_orgs.get(message_id=body["messageId"])
    assert account_of(org).reserved == hold.amount > 0
    fake_llm.script(Scenario(status=500), Scenario(status=500))  # the SDK tries twice
    assert run_job(body) == "error"

    assert_nothing_held(org)
    hold.refresh_from_db()
    assert hold.status == Reservation.Status.RELEASED
    assert not LedgerEntry.all_orgs.filter(organization=org, kind=LedgerEntry.Kind.USAGE).exists()
    assert account_of(org).balance == before
    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.error_code, message.credits) == ("failed", "llm_unavailable", Decimal(0))
    task = client.get(f"/tasks/{body['taskId']}").json()
    assert (task["status"], task["result"]) == ("todo", None)
    assert task["error"] == message.error != ""

    # back in todo, it can be run again, and that run is billed on its own
    fake_llm.script(Scenario(usage=(1000, 500)))
    again = client.post(f"/tasks/{body['taskId']}/run").json()
    assert again["sessionId"] != body["sessionId"]
    assert run_job(again) == "done"
    entry = LedgerEntry.all_orgs.get(organization=org, kind=LedgerEntry.Kind.USAGE)
    assert (str(entry.message_id), entry.amount) == (again["messageId"], Decimal("-0.045000"))
    assert account_of(org).balance == before - Decimal("0.045000")
    assert_nothing_held(org)
    assert client.get(f"/tasks/{body['taskId']}").json()["error"] is None


@pytest.mark.parametrize(
    ("model", "scenario"),
    [
        ("gpt-4o-mini", Scenario(chunks=["one ", "two ", "three ", "four"], drop_after=2)),
        ("gpt-4o-mini", Scenario(chunks=["one ", "two ", "three ", "four"], error_after=2)),
        ("claude-haiku-4-5", Scenario(chunks=["one ", "two ", "three ", "four"], drop_after=2)),
    ],
    ids=["openai-dropped", "openai-error-in-stream", "anthropic-dropped"],
)
def test_a_run_that_fails_mid_stream_bills_what_was_produced_once_and_releases_the_rest(
    runner, fake_llm, model, scenario
):
    """As a chat turn: the call cut short is billed for what it produced (the provider never sent
    its usage, so the produced text is estimated), the rest of the hold is released, the task goes
    back to todo with the error."""
    org, _, client = runner
    rate = ModelRate.objects.get(model=model)
    specialist = make_specialist(org, model=model)
    before = account_of(org).balance
    body = start_run(client, specialist)
    hold = Reservation.all_orgs.get(message_id=body["messageId"])
    fake_llm.script(scenario)
    assert run_job(body) == "error"

    entry = LedgerEntry.all_orgs.get(organization=org, kind=LedgerEntry.Kind.USAGE)  # once
    assert entry.output_tokens == 2  # "one two " is 8 characters ≈ 2 tokens
    assert entry.input_tokens > 0  # the request's estimate: it was sent
    cost = expected_cost(entry.input_tokens, entry.output_tokens, rate)
    assert 0 < cost < hold.amount
    assert entry.amount == -cost
    assert str(entry.message_id) == body["messageId"]
    assert account_of(org).balance == before - cost
    assert_nothing_held(org)
    hold.refresh_from_db()
    assert (hold.status, hold.charged) == (Reservation.Status.SETTLED, cost)

    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.error_code, message.content) == ("failed", "llm_unavailable", "one two ")
    assert (message.input_tokens, message.output_tokens, message.credits) == (entry.input_tokens, 2, cost)
    task = client.get(f"/tasks/{body['taskId']}").json()
    assert (task["status"], task["result"]) == ("todo", None)
    assert task["error"] == message.error != ""
