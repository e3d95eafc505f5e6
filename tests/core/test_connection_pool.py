"""Bounded database connections: a server process never holds more PostgreSQL connections than its
pool, whatever the concurrency, and a request that cannot get one in time is an honest 503."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError

from accounts.services import issue_tokens
from tests.conftest import assert_problem, client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import Daphne, server_env

pytestmark = pytest.mark.django_db(transaction=True)

POOL = 3
STREAMS = 12
APPLICATION = "leancore-pool-test"
# Every request reads its caller (the user, and the membership for org-scoped ones) first: while the test
# holds these tables, each request that got a connection waits on the lock, holding its connection.
CALLER_TABLES = "accounts_user, orgs_membership"
BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s"


def _connections(admin_url: str, database: str, stop: threading.Event, seen: list[int]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while not stop.is_set():
            seen.append(conn.execute(BACKENDS, [database, APPLICATION]).fetchone()[0])
            time.sleep(0.01)


def _waiting_on_the_lock(admin_url: str, database: str) -> int:
    """The server's connections in use and blocked on the test's lock, once as many as the pool holds
    (or after 60 s, when the assertion below names how many)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for _ in range(6000):
            blocked = conn.execute(f"{BACKENDS} AND wait_event_type = 'Lock'", [database, APPLICATION]).fetchone()[0]
            if blocked >= POOL:
                return blocked
            time.sleep(0.01)
    return blocked


def test_more_concurrent_streams_than_the_pool_all_complete_within_it(fake_llm, bundled_data):
    """A full pool: the test holds the tables every request reads first, so each request that gets a
    connection keeps it, blocked. Exactly POOL of them are blocked in the database while all STREAMS are
    still unanswered: every connection of the pool is in use and the other requests queue for one. Once
    the lock goes, every stream completes, and the process never had more than POOL connections."""
    env = server_env(
        {
            "OPENAI_BASE_URL": f"{fake_llm.url}/v1",
            "OPENAI_API_KEY": "sk-test",
            "DB_POOL_SIZE": str(POOL),
            "DB_POOL_TIMEOUT": "60",
        }
    )
    env["DATABASE_URL"] = env["DATABASE_URL"].replace(
        "application_name=leancore-test-server", f"application_name={APPLICATION}"
    )
    org = make_org(name="Crowd")
    token = issue_tokens(user=owner_of(org)).access
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(*[Scenario(chunks=[f"w{i} " for i in range(10)], usage=(50, 10), delay=0.05)] * STREAMS)
    server = Daphne(env)
    url = env["DATABASE_URL"].split("?", 1)[0]
    base, _, database = url.rpartition("/")
    admin_url = f"{base}/postgres"
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_connections, args=(admin_url, database, stop, seen))
    results: list[tuple[int, str]] = []

    async def crowd() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

            async def one(i: int) -> None:
                response = await client.post(
                    "/api/chat/stream",
                    json={"specialistId": str(specialist.pk), "message": f"question {i}"},
                    headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
                )
                results.append((response.status_code, response.text))  # as each one is answered

            await asyncio.gather(*(one(i) for i in range(STREAMS)))

    crowd_thread = threading.Thread(target=async_to_sync(crowd))
    watcher.start()
    try:
        with psycopg.connect(url) as lock:
            lock.execute(f"LOCK TABLE {CALLER_TABLES} IN ACCESS EXCLUSIVE MODE")
            crowd_thread.start()
            blocked = _waiting_on_the_lock(admin_url, database)
            answered = len(results)
            lock.rollback()  # the lock goes: the blocked requests go on, the queued ones get connections
        crowd_thread.join()
    finally:
        stop.set()
        watcher.join()
        server.stop()
    assert blocked == POOL, blocked  # every connection of the pool in use at once, and not one more
    assert answered == 0  # all STREAMS outstanding: the other STREAMS - POOL waited for a connection
    assert [status for status, _ in results] == [200] * STREAMS, results
    assert all("event: done" in text for _, text in results)
    assert max(seen) == POOL, max(seen)  # never more connections than the pool's


def test_a_database_that_is_briefly_unavailable_is_a_503_with_retry_after(owner, org, monkeypatch):
    """What a pool that cannot hand out a connection in time (or a restarting database) raises."""
    from specialists.views import SpecialistViewSet

    def unavailable(self):
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(SpecialistViewSet, "get_queryset", unavailable)
    response = client_for(owner).get("/specialists")
    assert_problem(response, 503, "service_unavailable")
    assert int(response["Retry-After"]) >= 1


def test_pages_outside_the_api_answer_503_too(client, django_user_model, monkeypatch):
    from django.contrib.admin import AdminSite

    client.force_login(django_user_model.objects.create_superuser(email="ops@leancore.test", password="x-Pass-0"))

    def unavailable(self, request, app_label=None):
        raise OperationalError("the connection is closed")

    monkeypatch.setattr(AdminSite, "get_app_list", unavailable)
    response = client.get("/admin/")
    assert_problem(response, 503, "service_unavailable")
