"""Faults with real processes: a worker killed in the middle of a turn, a server stopped during
one. Nothing stays running, every hold is given back, nothing is paid twice, and the system
recovers by itself (recovery delays shortened to seconds through settings)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import Message
from tests.conftest import make_org, make_specialist, owner_of, watched_session
from tests.fakes.llm_server import Scenario
from tests.servers import ROOT, Daphne, redis_url_for_tests, server_env

pytestmark = pytest.mark.django_db(transaction=True)

FAST_RECOVERY = {"TURN_HEARTBEAT_SECONDS": "0.5", "TURN_LEASE_SECONDS": "3", "MAINTENANCE_INTERVAL_SECONDS": "1"}


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _worker(env: dict[str, str], log_name: str) -> subprocess.Popen:
    log = (ROOT / "var" / log_name).open("w")
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def stack(django_db_blocker, _fake_llm_server, bundled_data):
    env = server_env(
        {
            "REDIS_URL": redis_url_for_tests(),
            "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1",
            "OPENAI_API_KEY": "sk-test",
            **FAST_RECOVERY,
        }
    )
    with django_db_blocker.unblock():
        server = Daphne(env)
    yield server, env
    server.stop()


def test_a_worker_killed_mid_turn_fails_the_turn_releases_its_hold_and_tells_the_watcher(stack, fake_llm):
    server, env = stack
    watched = watched_session("Killed worker")
    org, specialist, session, token = watched.org, watched.specialist, watched.session, watched.token
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(200)], delay=0.2))  # 40 s: killed long before
    ws_url = watched.socket_url(server.url)
    workers: list[subprocess.Popen] = []

    async def run() -> list[dict]:
        async with websockets.connect(ws_url) as socket:
            async with httpx.AsyncClient(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as http:
                sent = await http.post(
                    "/api/chat/async",
                    json={"specialistId": str(specialist.pk), "sessionId": str(session.pk), "message": "long"},
                )
                assert sent.status_code == 202, sent.text
            workers.append(_worker(env, "worker-killed.log"))
            frames = []
            while len([f for f in frames if f["event"] == "delta"]) < 3:  # the turn runs in that worker
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=120)))
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=10)
            workers.append(_worker(env, "worker-recovering.log"))
            while frames[-1]["event"] not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=120)))
            return frames

    try:
        frames = async_to_sync(run)()
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=10)
    assert frames[-1]["event"] == "error"
    assert frames[-1]["data"]["code"] == "worker_lost"
    message = Message.objects.get(session=session, role="assistant")
    assert (message.status, message.error_code) == ("failed", "worker_lost")
    assert CreditAccount.objects.get(organization=org).reserved == 0
    assert not Reservation.objects.filter(organization=org, status="active").exists()
    assert not LedgerEntry.objects.filter(organization=org, kind="usage").exists()  # never recorded: never billed
    assert len([r for r in fake_llm.requests if "long" in json.dumps(r)]) == 1  # not run a second time


def test_a_server_stopped_during_a_stream_leaves_nothing_running_or_held(stack, fake_llm):
    """A deploy's SIGTERM in the middle of an SSE turn: the turn ends failed (what was produced is
    billed once) or finishes; either way nothing stays running and no hold stays open."""
    server, _ = stack
    org = make_org(name="Deployed")
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner_of(org)).access
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(100)], delay=0.1))
    received = []

    def stream() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=60) as client,
            client.stream(
                "POST",
                "/api/chat/stream",
                json={"specialistId": str(specialist.pk), "message": "deploy"},
                headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"},
            ) as response,
        ):
            try:
                for line in response.iter_lines():
                    received.append(line)
                    if sum(1 for seen in received if seen == "event: delta") == 3:
                        server.process.send_signal(signal.SIGTERM)
            except httpx.HTTPError:
                pass  # the server went away

    stream()
    server.process.wait(timeout=30)
    message = _wait_for(
        lambda: Message.objects.filter(role="assistant", session__organization=org).exclude(status="running").first(),
        30,
        "the turn to end",
    )
    assert message.status in ("failed", "completed")
    assert CreditAccount.objects.get(organization=org).reserved == 0
    usage = LedgerEntry.objects.filter(organization=org, kind="usage")
    assert usage.count() == 1  # what was produced, billed once
    assert usage.get().amount == -message.credits
