"""The production stack as it runs on several machines: two server processes on different ports,
two workers, one PostgreSQL, one Redis. Events cross servers, throttles are shared, and concurrent
spenders spread over both servers never take an org below zero; the ledger sums exactly."""

from __future__ import annotations

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync
from django.db.models import Sum

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, Reservation
from billing.services import adjust_credits
from tests.chat.test_stream_e2e import parse_sse
from tests.conftest import add_member, make_org, make_specialist, watched_session
from tests.fakes.llm_server import Scenario
from tests.servers import Daphne, many_database_connections, redis_url_for_tests, server_env

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Machine:
    url: str


@pytest.fixture
def two_machines(django_db_blocker, _fake_llm_server):
    """``manage.py serve --port A --port B --processes 1 --workers 2``: the launcher the README's
    scale-out section uses, as on two machines. One stack a test, stopped before the test's database
    is emptied (a stack left running between tests had its workers' reads deadlock the emptying)."""
    env = server_env(
        {
            "REDIS_URL": redis_url_for_tests(),
            "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1",
            "OPENAI_API_KEY": "sk-test",
            "THROTTLE_CHAT": "4/min",
            "THROTTLE_CHAT_ORG": "100/min",
        }
    )
    with many_database_connections():  # two servers' pools and two workers': not beside another such test
        with django_db_blocker.unblock():
            stack = Daphne(env, all_cores=(1, 2), ports=2)
        try:
            log = stack.log.read_text()
            assert "2 server process(es)" in log, log
            assert "2 worker(s)" in log, log
            yield [Machine(url) for url in stack.urls]
        finally:
            stack.stop()
            # the stack's own lines, shown with a failing test's output (a turn's error says little alone)
            sys.stderr.write(stack.log.read_text()[-20_000:])


def _frames_until_done(socket, count: int):
    async def read() -> list[list[dict]]:
        turns, frames = [], []
        while len(turns) < count:
            frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=60))
            frames.append(frame)
            if frame["event"] in ("done", "error"):
                turns.append(frames)
                frames = []
        return turns

    return read()


def test_events_cross_servers_and_throttles_are_shared(two_machines, fake_llm, bundled_data):
    server_a, server_b = two_machines
    watched = watched_session("Two machines")
    specialist, session, token = watched.specialist, watched.session, watched.token
    on = {server: watched.socket_url(server.url) for server in (server_a, server_b)}

    async def run() -> tuple[list[list[dict]], list[int]]:
        async with websockets.connect(on[server_a]) as watcher, websockets.connect(on[server_b]) as sender:
            await asyncio.sleep(0.5)  # both sockets joined the session's group
            # a turn started on B's socket, run by B's process; A's socket sees it through Redis
            await sender.send(json.dumps({"type": "message", "message": "from B's socket"}))
            # an async turn sent to A, run by one of the workers
            async with httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}) as http:
                sent = await http.post(
                    f"{server_a.url}/api/chat/async",
                    json={"specialistId": str(specialist.pk), "sessionId": str(session.pk), "message": "by a worker"},
                )
                assert sent.status_code == 202, sent.text
                seen = await _frames_until_done(watcher, 2)
                # the chat throttle (4 a minute per user) counts on both servers together: 2 sent so far
                statuses = []
                for server in (server_b, server_a, server_b):
                    response = await http.post(
                        f"{server.url}/api/chat/async",
                        json={"specialistId": str(specialist.pk), "sessionId": str(session.pk), "message": "more"},
                    )
                    statuses.append(response.status_code)
        return seen, statuses

    seen, statuses = async_to_sync(run)()
    events = [frame["event"] for turn in seen for frame in turn]  # the two turns may interleave
    errors = [frame for turn in seen for frame in turn if frame["event"] == "error"]
    assert (events.count("session"), events.count("usage"), events.count("done")) == (2, 2, 2), (events, errors)
    assert events.count("delta") == 8, events  # the fake's four deltas, twice
    assert statuses == [202, 202, 429]


def test_concurrent_spenders_over_both_servers_never_overdraw_and_the_ledger_sums(two_machines, fake_llm, bundled_data):
    server_a, server_b = two_machines
    org = make_org(name="Spenders")
    # each stream holds its worst case: 100,000 output tokens at 60 a million = 6 credits
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=100_000)
    adjust_credits(org=org, amount=Decimal(-70), kind="adjustment", reason="leave 30 credits")
    spenders = [issue_tokens(user=add_member(org)).access for _ in range(20)]  # each within the user throttle

    def spend(index: int) -> tuple[int, str]:
        server = (server_a, server_b)[index % 2]
        response = httpx.post(
            f"{server.url}/api/chat/stream",
            json={"specialistId": str(specialist.pk), "message": f"spend {index}"},
            headers={"authorization": f"Bearer {spenders[index]}", "accept": "text/event-stream"},
            timeout=60,
        )
        code = response.json()["code"] if response.status_code != 200 else "event: done" in response.text
        return response.status_code, str(code)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(spend, range(20)))
    assert {status for status, _ in results} <= {200, 402}, results
    assert all(code == "True" for status, code in results if status == 200), results
    assert {code for status, code in results if status == 402} <= {"insufficient_credits"}, results
    served = sum(1 for status, _ in results if status == 200)
    assert served >= 4  # four holds of a little over 6 credits fit in 30 at once (more once some settle)
    assert served < 20  # and not all of them did
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.balance >= 0
    assert account.reserved == 0
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    assert LedgerEntry.all_orgs.filter(organization=org).aggregate(total=Sum("amount"))["total"] == account.balance
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == served


def test_a_turn_started_on_one_server_is_resumed_on_the_other(two_machines, fake_llm, bundled_data):
    """The replay log is Redis: a stream begun on A whose client leaves (onDisconnect continue) is
    resumed on B from the last event A's client saw; an async turn accepted by A and run by a worker
    is followed from B, by its events endpoint and by a socket opened after the 202. Each gets
    every event once, in order."""
    server_a, server_b = two_machines
    watched = watched_session("Resumed elsewhere")
    specialist, session = watched.specialist, watched.session
    headers = {"authorization": f"Bearer {watched.token}"}
    chunks = [f"w{i} " for i in range(6)]
    fake_llm.script(Scenario(chunks=chunks, delay=0.1, usage=(100, 6)), Scenario(chunks=["by ", "a ", "worker"]))
    body = {"specialistId": str(specialist.pk), "sessionId": str(session.pk), "onDisconnect": "continue"}
    seen = ""
    with httpx.stream("POST", f"{server_a.url}/api/chat/stream", json={**body, "message": "go"}, headers=headers) as r:
        for line in r.iter_lines():  # the session and the first delta, then the client goes away
            seen += line + "\n"
            if line == "" and seen.count("event: ") == 2:
                break
    first = parse_sse(seen)
    events_url = f"/api/chat/messages/{first[0][2]['messageId']}/events"
    resumed = httpx.get(f"{server_b.url}{events_url}", headers={**headers, "Last-Event-ID": first[-1][0]}, timeout=60)
    assert resumed.status_code == 200, resumed.text
    turn = first + parse_sse(resumed.text)
    assert [int(eid) for eid, _, _ in turn] == list(range(1, len(turn) + 1))
    assert [name for _, name, _ in turn][-2:] == ["usage", "done"]
    assert "".join(data["text"] for _, name, data in turn if name == "delta") == "".join(chunks)

    async def follow_an_async_turn_from_b() -> tuple[list[dict], str]:
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            sent = await http.post(f"{server_a.url}/api/chat/async", json={**body, "message": "later"})
            assert sent.status_code == 202, sent.text
            message_id = sent.json()["messageId"]
            async with websockets.connect(watched.socket_url(server_b.url)) as socket:
                await socket.send(json.dumps({"type": "resume", "messageId": message_id, "after": 0}))
                stream = await http.get(f"{server_b.url}/api/chat/messages/{message_id}/events")
                (frames,) = await _frames_until_done(socket, 1)
        return frames, stream.text

    frames, stream = async_to_sync(follow_an_async_turn_from_b)()
    assert [frame["id"] for frame in frames] == list(range(1, len(frames) + 1))
    assert [(str(f["id"]), f["event"], f["data"]) for f in frames] == parse_sse(stream)
    assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == "by a worker"
