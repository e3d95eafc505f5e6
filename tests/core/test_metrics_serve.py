"""GET /metrics through ``manage.py serve`` with two server processes and a worker: one scrape, on
whichever process answers it, adds up every process's counters (their files in the multi-process
directory), the directory is emptied at start, and a child that dies takes its WebSockets out of
the gauge while its counters stay in the totals. A real turn through the local model (run by a
server and by the worker) and a refusal move the turn families."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from websockets.sync.client import connect

from billing import services as billing
from chat.models import Message
from tests.conftest import watched_session
from tests.core.prometheus_text import TOKEN, assert_contract, parse, value
from tests.servers import Daphne, redis_url_for_tests, server_env

pytestmark = pytest.mark.django_db(transaction=True)

STALE_PID = 999_999
HEALTH = {"method": "GET", "route": "health", "status": "200"}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    directory = tmp_path_factory.mktemp("metrics")
    stale = MmapedDict(str(directory / f"counter_{STALE_PID}.db"))  # a previous run's process
    key = mmap_key("leancore_http_requests", "leancore_http_requests_total", list(HEALTH), list(HEALTH.values()), "")
    stale.write_value(key, 1_000_000.0, 0.0)
    stale.close()
    with django_db_blocker.unblock():
        env = server_env(
            {"REDIS_URL": redis_url_for_tests(), "METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        )
        env["DATABASE_URL"] = env["DATABASE_URL"].replace(
            "application_name=", f"application_name=metrics-{uuid.uuid4().hex[:8]}-"
        )
        server = Daphne(env, all_cores=(2, 1))
    server.metrics_directory = directory
    yield server
    server.stop()


def scrape(stack) -> dict:
    response = httpx.get(
        f"{stack.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return parse(response.text)


def children(stack) -> dict[int, str]:
    """The supervisor's children: pid → ``server`` or ``worker``."""
    pid = stack.process.pid
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        command = Path(f"/proc/{child}/cmdline").read_bytes()
        found[int(child)] = "server" if b"daphne" in command else "worker"
    return found


def per_process(directory: Path, kind: str, sample: str, **labels: str) -> dict[int, float]:
    """One sample's value in each process's own file (``kind``: ``counter``, ``gauge_livesum``)."""
    values = {}
    for file in directory.glob(f"{kind}_*.db"):
        for family in MultiProcessCollector.merge([str(file)], accumulate=True):
            for found in family.samples:
                if found.name == sample and found.labels == labels:
                    values[int(file.stem.rsplit("_", 1)[1])] = found.value
    return values


def test_one_scrape_adds_up_every_process_and_a_dead_one_leaves_only_its_counters(stack):
    directory = stack.metrics_directory
    assert not (directory / f"counter_{STALE_PID}.db").exists()  # emptied when serve started
    before = scrape(stack)
    assert value(before, "leancore_http_requests_total", **HEALTH) < 1_000_000
    for _ in range(40):  # one connection each: the kernel hands them to both server processes
        assert httpx.get(f"{stack.url}/health", headers={"Connection": "close"}).status_code == 200
    after = scrape(stack)
    served = value(after, "leancore_http_requests_total", **HEALTH) - value(
        before, "leancore_http_requests_total", **HEALTH
    )
    assert served == 40  # every process's answers, whichever process was scraped
    shares = per_process(directory, "counter", "leancore_http_requests_total", **HEALTH)
    servers = {pid for pid, kind in children(stack).items() if kind == "server"}
    assert len([pid for pid in servers if shares.get(pid)]) == 2, shares  # both took some: the sum is theirs
    assert sum(shares.values()) == value(after, "leancore_http_requests_total", **HEALTH)
    assert value(after, "leancore_db_pool_wait_seconds", "leancore_db_pool_wait_seconds_count") > 0

    watched = watched_session("Sockets", model="local")
    with connect(watched.socket_url(stack.url), open_timeout=30) as socket:
        deadline = time.monotonic() + 30
        # every process has the gauge (at 0): wait for the one that took the socket
        while (
            1
            not in (open_sockets := per_process(directory, "gauge_livesum", "leancore_websocket_connections")).values()
        ):
            assert time.monotonic() < deadline, "the socket is not counted"
            time.sleep(0.1)
        assert value(scrape(stack), "leancore_websocket_connections") == 1
        (holder,) = [pid for pid, count in open_sockets.items() if count == 1]
        counted = value(scrape(stack), "leancore_http_requests_total", **HEALTH)
        os.kill(holder, signal.SIGKILL)  # its socket dies with it; its gauge file would still say 1
        deadline = time.monotonic() + 30
        while (directory / f"gauge_livesum_{holder}.db").exists():
            assert time.monotonic() < deadline, stack.log.read_text()[-2000:]
            time.sleep(0.1)
        socket.close()
    final = scrape(stack)
    assert value(final, "leancore_websocket_connections") == 0
    assert value(final, "leancore_http_requests_total", **HEALTH) == counted  # the dead process's answers stay
    assert (directory / f"counter_{holder}.db").exists()


def test_turns_through_a_server_and_the_worker_and_a_refusal_are_counted(stack, bundled_data):
    watched = watched_session("Metered", model="local")
    headers = {"Authorization": f"Bearer {watched.token}"}
    body = {"specialistId": str(watched.specialist.pk), "message": "Count this turn."}
    before = scrape(stack)
    streamed = httpx.post(
        f"{stack.url}/api/chat/stream", json=body, headers={**headers, "Accept": "text/event-stream"}, timeout=60
    )
    assert streamed.status_code == 200
    assert "event: done" in streamed.text
    queued = httpx.post(f"{stack.url}/api/chat/async", json=body, headers=headers, timeout=30)
    assert queued.status_code == 202, queued.text
    message_id = queued.json()["messageId"]
    deadline = time.monotonic() + 60
    while Message.all_orgs.get(pk=message_id).status != Message.Status.COMPLETED:  # run by the worker process
        assert time.monotonic() < deadline, Message.all_orgs.get(pk=message_id).status
        time.sleep(0.2)
    billing.set_circuit(org=watched.org, actor=None, state="open", reason="Audit")
    refused = httpx.post(f"{stack.url}/api/chat/stream", json=body, headers=headers, timeout=30)
    assert refused.status_code == 402
    after = scrape(stack)

    def moved(name: str, sample: str | None = None, **labels: str) -> float:
        return value(after, name, sample, **labels) - value(before, name, sample, **labels)

    local = {"provider": "local", "model": "local"}
    assert moved("leancore_turns_total", **local, outcome="completed") == 2
    assert moved("leancore_turns_total", **local, outcome="refused") == 1
    assert moved("leancore_turns_total", **local, outcome="failed") == 0
    assert moved("leancore_refusals_total", scope="circuit") == 1
    for histogram in ("leancore_turn_first_token_seconds", "leancore_turn_duration_seconds"):
        assert moved(histogram, f"{histogram}_count", **local) == 2
    billed = Message.all_orgs.filter(session__organization=watched.org, status=Message.Status.COMPLETED)
    for direction, field in (("input", "input_tokens"), ("output", "output_tokens")):
        tokens = sum(getattr(message, field) for message in billed)
        assert moved("leancore_llm_tokens_total", **local, direction=direction) == tokens > 0
    spent = sum(message.credits for message in billed)
    assert moved("leancore_credits_spent_total", model="local") == pytest.approx(float(spent))
    stream = {"method": "POST", "route": "api/chat/stream"}
    assert moved("leancore_http_requests_total", **stream, status="200") == 1
    assert moved("leancore_http_requests_total", **stream, status="402") == 1
    assert {sample.labels["queue"] for sample in after["leancore_jobs_waiting"].samples} >= {"default"}
    assert_contract(after, every_family_recorded=False)
