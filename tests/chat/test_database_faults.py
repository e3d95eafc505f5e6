"""PostgreSQL dying during a turn, through a real server process: the server reaches PostgreSQL
through a proxy the test cuts in the middle of an SSE stream (every connection reset, new ones
refused) and restores later; the shared PostgreSQL server is never stopped. The stream ends with
``service_unavailable``; once the database is back the call is billed exactly once for what the
provider reported, no hold stays open, the message is failed, and the turn's events replay (Redis)
up to that error."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.db import connection

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from chat.models import Message
from chat.services import fail_stuck_turns
from core.credits import token_cost
from leancore.maintenance import run_upkeep
from tests.conftest import make_org, make_specialist, owner_of
from tests.db_proxy import DatabaseProxy
from tests.fakes.llm_server import Scenario
from tests.servers import APPLICATION_NAME, Daphne, redis_url_for_tests, server_env

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = (1234, 40)  # what the provider reports at the end of its stream


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def behind_a_proxy(django_db_setup, django_db_blocker, _fake_llm_server):
    """A server whose only road to PostgreSQL is a proxy the test can cut; Redis keeps the replay log."""
    with django_db_blocker.unblock():
        s = connection.settings_dict
        proxy = DatabaseProxy((s["HOST"] or "127.0.0.1", int(s["PORT"] or 5432)))
        password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
        env = server_env(
            {
                "DATABASE_URL": f"postgres://{s['USER']}{password}@127.0.0.1:{proxy.port}/{s['NAME']}"
                f"?application_name={APPLICATION_NAME}",
                "DB_POOL_TIMEOUT": "2",  # a phase waits this long for a connection the outage does not give
                "REDIS_URL": redis_url_for_tests(),
                "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1",
                "OPENAI_API_KEY": "sk-test",
                "TURN_HEARTBEAT_SECONDS": "0.5",
            }
        )
        server = Daphne(env)
    yield proxy, server
    proxy.restore()
    server.stop()
    proxy.close()


def _sse(lines: list[str]) -> list[tuple[str, str, dict]]:
    """(id, event, data) of each event of an SSE body's lines."""
    events, fields = [], {}
    for line in lines:
        if not line:
            if "event" in fields:
                events.append((fields["id"], fields["event"], json.loads(fields["data"])))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def _stream_while_the_database_dies(proxy: DatabaseProxy, server: Daphne, token: str, body: dict) -> list:
    """Streams a turn and cuts PostgreSQL off the server after its third delta; the events streamed,
    once the stream ended. The database stays away until the server has tried to write the turn's
    failure, and failed."""
    lines: list[str] = []
    cut_before = proxy.cut_connections
    with (
        httpx.Client(base_url=server.url, timeout=60) as client,
        client.stream(
            "POST",
            "/api/chat/stream",
            json=body,
            headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(line)
            if lines.count("event: delta") == 3 and proxy.cut_connections == cut_before:
                proxy.cut()  # PostgreSQL is gone for the server: its connections reset, new ones refused
    # the fault happened: the server's connections were cut, and it tries to write the turn in vain
    assert proxy.cut_connections > cut_before
    streamed = _sse(lines)
    refused = proxy.refused
    in_vain = f"Turn {streamed[0][2]['messageId']}: its failure is not recorded yet"
    _wait_for(lambda: in_vain in server.log.read_text(), 15, "the server to try writing the turn again")
    assert proxy.refused > refused
    return streamed


def _cost(usage: tuple[int, int]) -> Decimal:
    rate = ModelRate.objects.get(model="gpt-4o-mini", active=True)
    cost = token_cost(
        input_tokens=usage[0],
        output_tokens=usage[1],
        input_per_million=rate.input_credits_per_million,
        output_per_million=rate.output_credits_per_million,
    )
    assert cost > 0
    return cost


@pytest.mark.parametrize("maintenance_first", [False, True], ids=["server-first", "maintenance-first"])
def test_postgres_dying_during_a_stream_ends_it_503_bills_once_when_back_and_replays(
    behind_a_proxy, fake_llm, bundled_data, maintenance_first
):
    """``maintenance-first``: the outage outlived the turn's lease and a worker (which can reach the
    database) failed the turn ``worker_lost`` and gave its hold back before the server could write
    anything; the server's record still bills the call once and replaces that guess."""
    proxy, server = behind_a_proxy
    org = make_org(name="Database died")
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner_of(org)).access
    before = CreditAccount.all_orgs.get(organization=org).balance
    chunks = [f"w{i} " for i in range(12)]
    fake_llm.script(Scenario(chunks=chunks, delay=0.15, usage=USAGE))  # ~2 s: the database dies within it
    body = {"specialistId": str(specialist.pk), "message": "while the database dies"}
    try:
        streamed = _stream_while_the_database_dies(proxy, server, token, body)
        message_id = streamed[0][2]["messageId"]
        # the stream ended with service_unavailable after everything the provider sent
        assert [name for _, name, _ in streamed] == ["session", *["delta"] * len(chunks), "error"]
        assert "".join(data["text"] for _, name, data in streamed if name == "delta") == "".join(chunks)
        assert streamed[-1][2]["code"] == "service_unavailable"
        assert [int(seq) for seq, _, _ in streamed] == list(range(1, len(streamed) + 1))
        # while the database is away for the server, its turn is not recorded and nothing is billed
        assert Message.all_orgs.get(pk=message_id).status == "running"
        assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()
        if maintenance_first:
            assert fail_stuck_turns(lease=timedelta(microseconds=1)) == 1  # its lease, as if it had run out
            assert Message.all_orgs.get(pk=message_id).error_code == "worker_lost"
            assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    finally:
        proxy.restore()

    cost = _cost(USAGE)
    message = _wait_for(
        lambda: Message.all_orgs.filter(pk=message_id, error_code="service_unavailable").first(),
        30,
        "the server to record the turn once the database is back",
    )
    assert message.status == "failed"
    assert (message.input_tokens, message.output_tokens, message.credits) == (*USAGE, cost)
    assert message.content == "".join(chunks)
    run_upkeep()  # a recovery sweep after it finds nothing more to bill or release
    usage = LedgerEntry.all_orgs.filter(organization=org, kind="usage")
    assert usage.count() == 1
    assert usage.get().amount == -cost
    account = CreditAccount.all_orgs.get(organization=org)
    assert (account.balance, account.reserved) == (before - cost, Decimal(0))
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    assert len([r for r in fake_llm.requests if "while the database dies" in json.dumps(r)]) == 1

    # the turn's events, kept in Redis, replay exactly as they were streamed, up to that error
    replay = httpx.get(
        f"{server.url}/api/chat/messages/{message_id}/events",
        headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"},
        timeout=30,
    )
    assert replay.status_code == 200, replay.text
    assert _sse(replay.text.splitlines()) == streamed
