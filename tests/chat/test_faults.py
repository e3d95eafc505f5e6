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
from datetime import timedelta

import httpx
import psycopg
import pytest
import websockets
from asgiref.sync import async_to_sync
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.services import issue_tokens
from billing import services as billing
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import Message
from leancore.maintenance import TASK_PATH
from tests.conftest import make_org, make_specialist, owner_of, watched_session
from tests.fakes.llm_server import Scenario
from tests.servers import APPLICATION_NAME, ROOT, Daphne, redis_url_for_tests, server_env, wait_for_disconnect

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
    message = Message.all_orgs.get(session=session, role="assistant")
    assert (message.status, message.error_code) == ("failed", "worker_lost")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()  # never recorded: never billed
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
        lambda: Message.all_orgs.filter(role="assistant", session__organization=org).exclude(status="running").first(),
        30,
        "the turn to end",
    )
    assert message.status in ("failed", "completed")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    usage = LedgerEntry.all_orgs.filter(organization=org, kind="usage")
    assert usage.count() == 1  # what was produced, billed once
    assert usage.get().amount == -message.credits


def test_a_server_killed_during_a_stream_is_recovered_by_maintenance_and_bills_nothing(stack, fake_llm):
    """SIGKILL in the middle of an SSE turn: the process has no chance to settle, release or fail
    anything. The turn's lease runs out; maintenance (a db_worker's chain) fails it ``worker_lost``
    and gives its hold back. The tokens streamed were never recorded, so nobody pays for them, and
    the turn is not run again."""
    server, env = stack
    org = make_org(name="Crashed")
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner_of(org)).access
    before = CreditAccount.all_orgs.get(organization=org).balance
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(200)], delay=0.1))  # 20 s: killed long before
    received = []

    with httpx.Client(base_url=server.url, timeout=60) as client:
        try:
            with client.stream(
                "POST",
                "/api/chat/stream",
                json={"specialistId": str(specialist.pk), "message": "crash"},
                headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"},
            ) as response:
                for line in response.iter_lines():
                    received.append(line)
                    if received.count("event: delta") == 3:
                        server.process.send_signal(signal.SIGKILL)
        except httpx.HTTPError:
            pass  # the server went away
    assert server.process.wait(timeout=10) == -signal.SIGKILL
    assert received.count("event: done") == 0
    message = Message.all_orgs.get(role="assistant", session__organization=org)
    assert message.status == "running"  # nobody left to end it…
    assert Reservation.all_orgs.filter(organization=org, status="active").count() == 1  # …or give its hold back
    worker = _worker(env, "worker-after-server-kill.log")
    try:
        message = _wait_for(
            lambda: Message.all_orgs.filter(pk=message.pk).exclude(status="running").first(),
            60,
            "maintenance to end the turn",
        )
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert (message.status, message.error_code) == ("failed", "worker_lost")
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.reserved == 0
    assert account.balance == before  # nothing billed for tokens never recorded
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    assert set(Reservation.all_orgs.filter(organization=org).values_list("status", flat=True)) == {"released"}
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()
    assert not Message.all_orgs.filter(session__organization=org, status__in=["running", "queued"]).exists()
    assert len([r for r in fake_llm.requests if "crash" in json.dumps(r)]) == 1  # not run a second time


def _blocked_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            [APPLICATION_NAME],
        )
        return cursor.fetchone()[0] > 0


def test_a_worker_killed_while_it_runs_maintenance_leaves_the_chain_going(bundled_data):
    """The maintenance job is held in the middle of its work (a stale hold it must release is locked
    by the test, so the job waits on the lock while RUNNING), and its worker is killed (SIGKILL).
    The next run, enqueued before the work began, is waiting; a new worker runs it and the runs
    after it: the stale hold is released, once, and the chain goes on."""
    env = server_env(FAST_RECOVERY)
    org = make_org(name="Upkeep")
    before = CreditAccount.all_orgs.get(organization=org).balance
    hold = billing.reserve(org=org, model="local", input_tokens=10, max_output_tokens=10)
    Reservation.all_orgs.filter(pk=hold.reservation_id).update(created_at=timezone.now() - timedelta(hours=1))
    maintenance_runs = DBTaskResult.objects.filter(task_path=TASK_PATH)
    workers: list[subprocess.Popen] = []
    s = connection.settings_dict
    lock = psycopg.connect(
        f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}", password=s["PASSWORD"]
    )
    try:
        lock.execute("SELECT 1 FROM billing_reservation WHERE id = %s FOR UPDATE", [hold.reservation_id])
        workers.append(_worker(env, "worker-killed-in-maintenance.log"))
        _wait_for(
            lambda: maintenance_runs.filter(status="RUNNING").exists() and _blocked_on_a_lock(),
            60,
            "maintenance to be waiting on the locked hold",
        )
        (killed,) = maintenance_runs.filter(status="RUNNING")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        # the next run was enqueued before the work: the chain did not die with the worker
        assert maintenance_runs.filter(status="READY").count() == 1
        assert not maintenance_runs.filter(status="SUCCESSFUL").exists()
        lock.rollback()  # the killed job's statement, unblocked, has no client left to commit it
        assert Reservation.all_orgs.get(pk=hold.reservation_id).status == "active"
        workers.append(_worker(env, "worker-after-maintenance-kill.log"))
        _wait_for(
            lambda: Reservation.all_orgs.get(pk=hold.reservation_id).status == "released",
            60,
            "a new worker's maintenance to release the stale hold",
        )
        _wait_for(lambda: maintenance_runs.filter(status="SUCCESSFUL").count() >= 2, 30, "upkeep to run again")
    finally:
        lock.close()
        for worker in workers:
            worker.kill()
            worker.wait(timeout=10)
        wait_for_disconnect(env["DATABASE_URL"])
    assert maintenance_runs.filter(status="READY").count() == 1  # still scheduled, exactly once
    assert maintenance_runs.get(pk=killed.pk).status == "RUNNING"  # the killed run is not run again
    first = maintenance_runs.filter(status="SUCCESSFUL").order_by("finished_at").first()
    assert first.return_value["released_reservations"] == 1
    assert sum(run.return_value["released_reservations"] for run in maintenance_runs.filter(status="SUCCESSFUL")) == 1
    account = CreditAccount.all_orgs.get(organization=org)
    assert (account.reserved, account.balance) == (0, before)
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()
