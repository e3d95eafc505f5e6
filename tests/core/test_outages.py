"""Outages of the services LeanCore stands on, with real processes: Redis going away under a
running server, and PostgreSQL restarting under one. Each test stops a server of its own (a
private ``redis-server``, a throwaway ``initdb`` cluster), never the machine's shared ones."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync
from django.db.models import Sum

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry
from tests.conftest import make_org, make_specialist, owner_of, watched_session
from tests.servers import Daphne, PrivateRedis, ThrowawayPostgres, server_env
from tests.servers import test_database_url as database_url_of_tests

pytestmark = pytest.mark.django_db(transaction=True)


def _stream(server: Daphne, token: str, specialist_id: object, message: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/chat/stream",
        json={"specialistId": str(specialist_id), "message": message},
        headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"},
        timeout=30,
    )


def _events(response: httpx.Response) -> list[str]:
    return [line.removeprefix("event: ") for line in response.text.splitlines() if line.startswith("event: ")]


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["code"] == code, body
    return body


# --- Redis goes away --------------------------------------------------------------------------


@pytest.fixture
def redis_stack(django_db_blocker, _fake_llm_server, bundled_data, tmp_path):
    redis = PrivateRedis(tmp_path)
    env = server_env(
        {"REDIS_URL": redis.url, "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1", "OPENAI_API_KEY": "sk-test"}
    )
    with django_db_blocker.unblock():
        server = Daphne(env)
    yield redis, server
    server.stop()
    redis.kill()


def test_redis_going_away_leaves_http_and_sse_working_and_closes_websockets_1013(redis_stack, fake_llm):
    """Throttles (on the Redis cache) fail open, publishing a turn's events to the channel layer
    never stalls its stream, open WebSockets close 1013 (try again later) and new ones are refused
    so; once Redis is back, WebSockets work again without restarting LeanCore."""
    redis, server = redis_stack
    watched = watched_session("Redis outage")
    org, specialist, token = watched.org, watched.specialist, watched.token
    socket_url = watched.socket_url(server.url)
    headers = {"authorization": f"Bearer {token}"}

    async def outage() -> tuple[int, int]:
        async with websockets.connect(socket_url) as watcher:
            await asyncio.sleep(0.3)  # joined the session's group
            redis.kill()
            # the open socket learns that live events can no longer reach it
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(watcher.recv(), timeout=15)
            async with websockets.connect(socket_url) as refused:
                with pytest.raises(websockets.ConnectionClosed) as refused_closed:
                    await asyncio.wait_for(refused.recv(), timeout=15)
        return closed.value.rcvd.code, refused_closed.value.rcvd.code

    assert async_to_sync(outage)() == (1013, 1013)

    # HTTP and SSE go on: the throttles fail open, the stream is not held up by the layer
    assert httpx.get(f"{server.url}/users/me", headers=headers, timeout=10).status_code == 200
    response = _stream(server, token, specialist.pk, "Redis is gone")
    assert response.status_code == 200, response.text
    events = _events(response)
    assert events[0] == "session"
    assert events[-2:] == ["usage", "done"], events
    assert response.elapsed.total_seconds() < 10
    # the health check says which part is down
    health = _assert_problem(httpx.get(f"{server.url}/health", timeout=10), 503, "service_unavailable")
    assert health["channelLayer"] != "ok"
    assert health["database"] == "ok"
    # the turn was billed once, exactly as when Redis is up
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 1
    # its events could not be kept for replay: a resume is told so, it is not given a history
    message_id = json.loads(response.text.split("data: ", 1)[1].split("\n", 1)[0])["messageId"]
    replay_url = f"{server.url}/api/chat/messages/{message_id}/events"
    _assert_problem(httpx.get(replay_url, headers=headers, timeout=10), 503, "service_unavailable")

    redis.start()  # back, on the same address: no restart of LeanCore
    # still not kept: a 503, or (within a few seconds of the turn's end, while its last events may
    # still be on their way) a stream whose one event is that error
    again = httpx.get(replay_url, headers=headers, timeout=30)
    if again.status_code == 200:
        assert _events(again) == ["error"], again.text
        assert '"code":"service_unavailable"' in again.text
    else:
        _assert_problem(again, 503, "service_unavailable")

    async def recovered() -> list[str]:
        async with websockets.connect(socket_url) as watcher:
            await asyncio.sleep(0.3)
            await watcher.send(json.dumps({"type": "message", "message": "Redis is back"}))
            names: list[str] = []
            while not names or names[-1] not in ("done", "error"):
                names.append(json.loads(await asyncio.wait_for(watcher.recv(), timeout=20))["event"])
            return names

    names = async_to_sync(recovered)()
    assert names[0] == "session"
    assert names[-2:] == ["usage", "done"], names
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


# --- PostgreSQL restarts ----------------------------------------------------------------------


@pytest.fixture
def postgres_stack(django_db_blocker, _fake_llm_server, bundled_data):
    """A server on a throwaway PostgreSQL cluster that holds a copy of the test database (made once
    the test has written what it needs: call ``start(server_env)``)."""
    cluster = ThrowawayPostgres()
    servers: list[Daphne] = []

    def start() -> Daphne:
        database = cluster.copy_of(database_url_of_tests())
        env = server_env(
            {
                "DATABASE_URL": database,
                "DB_POOL_TIMEOUT": "4",  # a request waits at most this long for a connection
                "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1",
                "OPENAI_API_KEY": "sk-test",
            }
        )
        with django_db_blocker.unblock():
            servers.append(Daphne(env))
        return servers[-1]

    yield cluster, start
    for server in servers:
        server.stop()
    cluster.remove()


def _balance(database_url: str, org_id: object) -> tuple[Decimal, Decimal, Decimal, int]:
    """Balance, reserved, ledger sum and usage entries of an org, read on the throwaway database."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        balance, reserved = conn.execute(
            "SELECT balance, reserved FROM billing_creditaccount WHERE organization_id = %s", [org_id]
        ).fetchone()
        total, usage = conn.execute(
            "SELECT sum(amount), count(*) FILTER (WHERE kind = 'usage') FROM billing_ledgerentry "
            "WHERE organization_id = %s",
            [org_id],
        ).fetchone()
    return balance, reserved, total, usage


def test_postgres_restarting_under_the_server_answers_503_then_recovers_by_itself(postgres_stack, fake_llm):
    cluster, start = postgres_stack
    org = make_org(name="Database outage")
    owner = owner_of(org)
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner).access
    headers = {"authorization": f"Bearer {token}"}
    # what the server sees is the throwaway copy: the shared test database is never stopped
    assert CreditAccount.all_orgs.get(organization=org).balance == Decimal(100)
    server = start()
    database = server.env_database

    assert httpx.get(f"{server.url}/users/me", headers=headers, timeout=10).status_code == 200
    before = _stream(server, token, specialist.pk, "before")
    assert before.status_code == 200
    assert _events(before)[-1] == "done"

    cluster.stop()
    # during the outage: 503 problem+json with Retry-After on every road, never a 500
    for response in (
        httpx.get(f"{server.url}/users/me", headers=headers, timeout=30),
        httpx.get(f"{server.url}/specialists", headers=headers, timeout=30),
        _stream(server, token, specialist.pk, "during"),
        httpx.post(f"{server.url}/auth/login", json={"email": owner.email, "password": "x"}, timeout=30),
    ):
        _assert_problem(response, 503, "service_unavailable")
        assert int(response.headers["retry-after"]) > 0
    health = _assert_problem(httpx.get(f"{server.url}/health", timeout=30), 503, "service_unavailable")
    assert health["database"] != "ok"

    cluster.start()
    # after it: the very first requests succeed, on the same server process
    assert httpx.get(f"{server.url}/users/me", headers=headers, timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/specialists", headers=headers, timeout=10).status_code == 200
    after = _stream(server, token, specialist.pk, "after")
    assert after.status_code == 200, after.text
    assert _events(after)[-1] == "done"
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    assert server.process.poll() is None  # never restarted

    # two turns billed, the one refused during the outage not at all; nothing held
    balance, reserved, total, usage = _balance(database, org.pk)
    assert (reserved, usage) == (Decimal(0), 2)
    assert total == balance < Decimal(100)
    assert LedgerEntry.all_orgs.filter(organization=org).aggregate(total=Sum("amount"))["total"] == Decimal(100)
