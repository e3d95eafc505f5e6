"""``manage.py serve``: every core of a machine behind one port, WebSockets and SSE on each process,
background workers beside them, and database pools that fit PostgreSQL together."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management.base import CommandError

from accounts.services import issue_tokens
from chat.models import ChatSession
from leancore.management.commands.serve import plan_pools
from tests.conftest import make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import Daphne, redis_url_for_tests, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_pools_are_sized_to_fit_postgresql_together():
    plan = plan_pools(servers=4, workers=2, wanted_pool=10, max_connections=100, worker_pool=2)
    assert (plan.server_pool, plan.total) == (10, 44)
    small = plan_pools(servers=8, workers=2, wanted_pool=20, max_connections=100, worker_pool=2)
    assert small.server_pool == 10  # (100 - 10 reserved - 2 × 2) // 8
    # by default a worker has a connection for each turn and delivery it runs at once, and one for maintenance
    concurrent = plan_pools(servers=4, workers=2, wanted_pool=20, max_connections=100)
    assert concurrent.worker_pool == settings.WORKER_TURN_CONCURRENCY + settings.WEBHOOK_WORKER_CONCURRENCY + 1
    assert concurrent.total <= 100 - 10
    assert small.total <= 100 - 10
    with pytest.raises(CommandError):
        plan_pools(servers=50, workers=1, wanted_pool=10, max_connections=100)
    assert plan_pools(servers=2, workers=1, wanted_pool=10, max_connections=None).server_pool == 0  # SQLite


def _start_all_cores(llm_url: str) -> Daphne:
    redis_url = redis_url_for_tests()
    env = server_env({"REDIS_URL": redis_url, "OPENAI_BASE_URL": f"{llm_url}/v1", "OPENAI_API_KEY": "sk-test"})
    # its own application name: the connections of an earlier stack's servers, still exiting, are not counted
    env["DATABASE_URL"] = env["DATABASE_URL"].replace(
        "application_name=", f"application_name=serve-{uuid.uuid4().hex[:8]}-"
    )
    return Daphne(env, all_cores=(2, 1))


@pytest.fixture(scope="module")
def _all_cores_stacks(django_db_setup, django_db_blocker, _fake_llm_server):
    """The module's ``manage.py serve`` stack (a supervisor, two server processes, a worker): one for
    the tests that use it, started again only when a test has killed its supervisor."""
    started: list[Daphne] = []

    def running() -> Daphne:
        if started and started[-1].process.poll() is None:
            return started[-1]
        with django_db_blocker.unblock():
            if started:
                started[-1].stop()
            started.append(_start_all_cores(_fake_llm_server.url))
        return started[-1]

    yield running
    with django_db_blocker.unblock():
        for stack in started:
            stack.stop()


@pytest.fixture
def all_cores(_all_cores_stacks, fake_llm, bundled_data):
    return _all_cores_stacks()


def test_two_server_processes_and_a_worker_behind_one_port(all_cores, fake_llm):
    org = make_org(name="Everywhere")
    owner = owner_of(org)
    token = issue_tokens(user=owner).access
    specialist = make_specialist(org, model="gpt-4o-mini")
    headers = {"Authorization": f"Bearer {token}"}
    # the plan is printed, and both server processes take connections
    for _ in range(40):
        assert httpx.get(f"{all_cores.url}/health", headers={"Connection": "close"}).status_code == 200
    log = all_cores.log.read_text()
    assert re.search(r"2 server process\(es\) × pool \d+ \+ 1 worker\(s\) × pool \d+ = at most \d+ of PostgreSQL", log)
    assert "server-1 | " in log
    assert "server-2 | " in log
    # SSE through the shared port
    fake_llm.script(Scenario(chunks=["one ", "port"], usage=(10, 2)))
    response = httpx.post(
        f"{all_cores.url}/api/chat/stream",
        json={"specialistId": str(specialist.pk), "message": "hi"},
        headers={**headers, "Accept": "text/event-stream"},
        timeout=30,
    )
    assert response.status_code == 200
    assert "event: done" in response.text
    session = ChatSession.all_orgs.get(
        pk=json.loads(response.text.split("data: ", 1)[1].split("\n", 1)[0])["sessionId"]
    )
    # an async turn run by the worker process reaches a WebSocket on whichever server process took it
    fake_llm.script(Scenario(chunks=["from ", "the ", "worker"], usage=(10, 3)))
    ws_url = all_cores.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/?token={token}"

    async def watch() -> list[dict]:
        async with websockets.connect(ws_url) as socket:
            async with httpx.AsyncClient() as client:
                sent = await client.post(
                    f"{all_cores.url}/api/chat/async",
                    json={"specialistId": str(specialist.pk), "message": "bg", "sessionId": str(session.pk)},
                    headers=headers,
                )
            assert sent.status_code == 202
            frames = []
            while not frames or frames[-1]["event"] not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=30)))
            return frames

    frames = async_to_sync(watch)()
    assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == "from the worker"


def test_a_server_process_that_dies_is_started_again(all_cores):
    time.sleep(1)
    pid = all_cores.process.pid
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(children) == 3  # two servers, one worker
    os.kill(children[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while "exited with -9; starting it again" not in all_cores.log.read_text():
        assert time.monotonic() < deadline, all_cores.log.read_text()
        time.sleep(0.2)
    for _ in range(10):
        assert httpx.get(f"{all_cores.url}/health", headers={"Connection": "close"}).status_code == 200


def test_client_addresses_come_from_the_connection_unless_told_otherwise(all_cores):
    """X-Forwarded-For is a client's word: the servers never take the address from it, and Django
    reads it only as far as TRUSTED_PROXY_COUNT proxies are trusted (0 here)."""
    url = f"{all_cores.url}/auth/login"
    statuses = []
    for i in range(70):  # 50 from one client (5 × THROTTLE_LOGIN); a minute's turn may add a few more
        statuses.append(
            httpx.post(url, json={"email": f"nobody{i}@example.com", "password": "wrong-Passw0rd"}).status_code
        )
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429, statuses
    assert len(statuses) > 50, statuses  # the limit itself is not lower than it says
    spoofed = httpx.post(
        url,
        json={"email": "another@example.com", "password": "wrong-Passw0rd"},
        headers={"X-Forwarded-For": "10.9.8.7"},
    )
    assert spoofed.status_code == 429


def test_the_supervisor_holds_no_connection_and_its_children_die_with_it(all_cores):
    import psycopg

    log = all_cores.log.read_text()
    application = all_cores.env_database.split("application_name=", 1)[1]
    planned = int(re.search(r"= at most (\d+) of PostgreSQL", log).group(1))
    base, _, name = all_cores.env_database.split("?", 1)[0].rpartition("/")
    supervisor = all_cores.process.pid
    # A connection a pool has just replaced can stay listed for a moment while its backend exits (on a
    # loaded machine): the count must come back within the plan, not merely once have been in it.
    counts = []
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        for _ in range(10):
            rows = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                [name, application],
            ).fetchone()
            counts.append(rows[0])
            if counts[-1] <= planned:
                break
            time.sleep(0.5)
    assert counts[-1] <= planned, counts
    children = [int(child) for child in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()]
    os.kill(supervisor, signal.SIGKILL)  # no chance to stop its children itself
    deadline = time.monotonic() + 45  # a graceful exit: on a loaded machine the pools' threads take a while
    while any(
        Path(f"/proc/{child}").exists() and "Z" not in Path(f"/proc/{child}/stat").read_text().split()[2]
        for child in children
    ):
        assert time.monotonic() < deadline, "children outlived the supervisor"
        time.sleep(0.2)


def test_one_process_without_redis_runs_the_worker_inside_it(fake_llm, bundled_data):
    env = server_env({"OPENAI_BASE_URL": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test"})
    server = Daphne(env, all_cores=(1, 1))
    try:
        log = server.log.read_text()
        assert "the background worker runs inside the server: no REDIS_URL" in log
        pid = server.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1  # the server only
    finally:
        server.stop()
