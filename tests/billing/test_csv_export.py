"""``Accept: text/csv`` on the ledger and the usage summary: every matching row, streamed in chunks,
cells escaped, a member's export as private as their JSON, and no database connection held while
a client reads."""

from __future__ import annotations

import asyncio
import csv
import io
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import psycopg
import pytest
from django.db import connection

from accounts.services import issue_tokens
from billing.models import LedgerEntry
from billing.serializers import LedgerEntrySerializer
from core.errors import camelize_key
from tests import servers
from tests.conftest import add_member, assert_problem, client_for, make_org, owner_of
from tests.servers import APPLICATION_NAME, Daphne, server_env

LEDGER = "/billing/credits/usage"
SUMMARY = "/billing/usage/summary"
CSV = {"HTTP_ACCEPT": "text/csv"}
LEDGER_HEADER = [camelize_key(name) for name in LedgerEntrySerializer().fields]


def record(clock, org, *, at: datetime, kind: str = "usage", amount: str, **fields) -> LedgerEntry:
    clock["at"] = at
    return LedgerEntry.all_orgs.create(
        organization=org, kind=kind, amount=Decimal(amount), balance_after=Decimal(1), **fields
    )


def read_csv(response) -> list[list[str]]:
    assert response.streaming, "a CSV export is streamed"
    assert response["Content-Type"].startswith("text/csv"), response["Content-Type"]
    assert response["Content-Disposition"].startswith("attachment; filename="), response["Content-Disposition"]
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.django_db
def test_the_ledger_as_csv_is_every_entry_with_the_json_field_names(clock, org, owner, other_org):
    for day in range(1, 26):  # more than one page of the JSON list
        record(clock, org, at=datetime(2026, 6, day, tzinfo=UTC), amount="-0.045000", model="gpt-4o-mini")
    record(clock, other_org, at=datetime(2026, 6, 2, tzinfo=UTC), amount="-9")
    client = client_for(owner)
    rows = read_csv(client.get(LEDGER, **CSV))
    header, *entries = rows
    assert header == LEDGER_HEADER
    assert header == list(client.get(LEDGER).json()["results"][0])  # the JSON representation's names, in order
    # the signup grant, then 25 usage entries; newest first, like the JSON list
    assert len(entries) == 26
    json_page = client.get(LEDGER, {"pageSize": 100}).json()["results"]
    assert [row[0] for row in entries] == [entry["id"] for entry in json_page]
    usage = dict(zip(header, entries[0], strict=True))
    assert usage["amount"] == "-0.045000"  # a plain negative number is not escaped
    assert usage["createdAt"].startswith("2026-06-25T00:00:00")
    assert usage["userId"] == ""  # null is an empty cell


@pytest.mark.django_db
def test_the_csv_takes_the_lists_filters(clock, org, owner, member):
    record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount="-1", user_id=member.pk, model="gpt-4o-mini")
    record(clock, org, at=datetime(2026, 6, 4, tzinfo=UTC), amount="-2", user_id=owner.pk, model="gpt-4o-mini")
    record(clock, org, at=datetime(2026, 6, 5, tzinfo=UTC), amount="-3", user_id=owner.pk, model="claude-3-5-haiku")
    client = client_for(owner)
    rows = read_csv(client.get(LEDGER, {"userId": str(owner.pk), "model": "gpt-4o-mini"}, **CSV))
    assert [row[LEDGER_HEADER.index("amount")] for row in rows[1:]] == ["-2.000000"]
    assert client.get(LEDGER, {"userId": str(owner.pk)}).json()["count"] == 2
    rows = read_csv(client.get(LEDGER, {"kind": "usage", "from": "2026-06-04", "to": "2026-06-05"}, **CSV))
    assert [row[LEDGER_HEADER.index("amount")] for row in rows[1:]] == ["-2.000000"]
    assert_problem(client.get(LEDGER, {"userId": "nope"}, **CSV), 400, "validation_error")


@pytest.mark.django_db
def test_formula_like_cells_are_escaped_and_numbers_are_not(clock, org, owner):
    record(
        clock,
        org,
        at=datetime(2026, 6, 3, tzinfo=UTC),
        amount="-20",
        model='=HYPERLINK("http://evil")',
        description="@SUM(A1:A9) refund for +1 call",
        specialist_name="=cmd|' /C calc'!A0",
    )
    rows = read_csv(client_for(owner).get(LEDGER, {"kind": "usage"}, **CSV))
    entry = dict(zip(rows[0], rows[1], strict=True))
    assert entry["model"] == '\'=HYPERLINK("http://evil")'
    assert entry["description"] == "'@SUM(A1:A9) refund for +1 call"
    assert entry["amount"] == "-20.000000"
    summary = read_csv(client_for(owner).get(SUMMARY, {"from": "2026-06-01", "groupBy": "model"}, **CSV))
    assert summary == [
        ["model", "credits", "calls", "inputTokens", "outputTokens"],
        ['\'=HYPERLINK("http://evil")', "20.000000", "1", "0", "0"],
    ]


@pytest.mark.django_db
def test_an_export_of_many_chunks_has_every_row_once_in_order(clock, org, owner, monkeypatch):
    monkeypatch.setattr("billing.views.CHUNK_ROWS", 7)
    at = datetime(2026, 6, 3, tzinfo=UTC)
    for index in range(30):  # ten entries at the very same instant: the keyset's tie is broken by id
        record(
            clock,
            org,
            at=at if index % 3 == 0 else datetime(2026, 6, 4, tzinfo=UTC) + timedelta(minutes=index),
            amount="-1",
        )
        if index % 3 == 0:
            clock["at"] = at  # the clock ticks a microsecond per reading: put it back
    clock["at"] = datetime(2026, 6, 20, tzinfo=UTC)
    rows = read_csv(client_for(owner).get(LEDGER, {"kind": "usage"}, **CSV))[1:]
    ids = [row[0] for row in rows]
    expected = list(
        LedgerEntry.all_orgs.filter(organization=org, kind="usage")
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
    )
    assert len(expected) == 30
    assert ids == [str(pk) for pk in expected]


@pytest.mark.django_db
def test_a_members_export_has_only_their_own_usage_and_the_orgs_grants(clock, org, member):
    other = add_member(org)
    mine = record(clock, org, at=datetime(2026, 6, 3, tzinfo=UTC), amount="-1", user_id=member.pk)
    record(clock, org, at=datetime(2026, 6, 4, tzinfo=UTC), amount="-2", user_id=other.pk)
    record(clock, org, at=datetime(2026, 6, 5, tzinfo=UTC), amount="-4", user_id=None)
    refund = record(clock, org, at=datetime(2026, 6, 6, tzinfo=UTC), kind="refund", amount="2", user_id=other.pk)
    client = client_for(member)
    grants = {
        str(pk) for pk in LedgerEntry.all_orgs.filter(organization=org, kind="grant").values_list("pk", flat=True)
    }
    visible = {str(mine.pk), str(refund.pk), *grants}
    assert {row[0] for row in read_csv(client.get(LEDGER, **CSV))[1:]} == visible
    assert {entry["id"] for entry in client.get(LEDGER).json()["results"]} == visible
    assert client.get(LEDGER, {"userId": str(other.pk), "kind": "usage"}).json()["count"] == 0
    summary = read_csv(client.get(SUMMARY, {"from": "2026-06-01", "groupBy": "member"}, **CSV))
    assert summary[1:] == [[str(member.pk), "1.000000", "1", "0", "0"]]


@pytest.mark.django_db
def test_the_summary_as_csv_is_its_rows_without_totals(clock, org, owner):
    record(clock, org, at=datetime(2026, 6, 3, 10, tzinfo=UTC), amount="-1.5", model="gpt-4o-mini", input_tokens=7)
    record(clock, org, at=datetime(2026, 6, 3, 11, tzinfo=UTC), amount="-2.25", model="", output_tokens=3)
    record(clock, org, at=datetime(2026, 6, 4, tzinfo=UTC), amount="-1", model="gpt-4o-mini")
    clock["at"] = datetime(2026, 6, 20, tzinfo=UTC)
    response = client_for(owner).get(SUMMARY, {"groupBy": "day,model"}, HTTP_ACCEPT="text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="usage-summary.csv"'
    assert read_csv(response) == [
        ["day", "model", "credits", "calls", "inputTokens", "outputTokens"],
        ["2026-06-03", "", "2.250000", "1", "0", "3"],
        ["2026-06-03", "gpt-4o-mini", "1.500000", "1", "7", "0"],
        ["2026-06-04", "gpt-4o-mini", "1.000000", "1", "0", "0"],
    ]
    by_format = client_for(owner).get(SUMMARY, {"groupBy": "day,model", "format": "csv"})
    assert read_csv(by_format)[0] == ["day", "model", "credits", "calls", "inputTokens", "outputTokens"]


@pytest.mark.django_db
def test_errors_stay_problem_json_when_csv_is_asked_for(clock, owner, anon):
    assert_problem(client_for(owner).get(SUMMARY, {"groupBy": "week"}, **CSV), 400, "validation_error")
    assert_problem(anon.get(LEDGER, **CSV), 401, "not_authenticated")
    assert client_for(owner).get(LEDGER, HTTP_ACCEPT="application/json").json()["count"] == 1


# --- no database connection held between chunks -------------------------------------------------


def _connections_of_this_process(probe: psycopg.Connection) -> int:
    """The test database's client backends besides the probe and test servers (the in-process app's)."""
    row = probe.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND application_name NOT LIKE %s",
        [f"{APPLICATION_NAME}%"],
    ).fetchone()
    return row[0]


def _settled_count(probe: psycopg.Connection, baseline: int) -> int:
    """The count once a connection closed a moment ago has left (a backend exits shortly after its
    client closes it); one that is still held never leaves."""
    deadline = time.monotonic() + 3
    while (count := _connections_of_this_process(probe)) != baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def _asgi_get(path: str, token: str, on_body) -> int:
    """GET ``path`` through Django's ASGI handler in this process; ``on_body`` runs (in a thread) at
    each body message before the app may send the next: a client that reads slowly."""
    from django.core.asgi import get_asgi_application

    app = get_asgi_application()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode()), (b"accept", b"text/csv")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    status = {}

    async def run() -> None:
        never = asyncio.Event()
        sent = [False]

        async def receive() -> dict:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await never.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                await asyncio.to_thread(on_body, message.get("body", b""), message.get("more_body", False))

        await app(scope, receive, send)

    asyncio.run(run())
    return status["code"]


@pytest.mark.django_db(transaction=True)
def test_a_slow_reader_holds_no_database_connection_between_chunks(monkeypatch, clock):
    monkeypatch.setattr("billing.views.CHUNK_ROWS", 5)
    org = make_org(name="Slow Readers")
    for day in range(1, 21):
        record(clock, org, at=datetime(2026, 6, day, tzinfo=UTC), amount="-1")
    token = issue_tokens(user=owner_of(org)).access
    connection.close()  # the test's own connection is not counted
    seen: list[tuple[int, int]] = []
    body = bytearray()
    with psycopg.connect(servers.test_database_url().split("?")[0], autocommit=True) as probe:
        baseline = _connections_of_this_process(probe)

        def slow_client(chunk: bytes, more: bool) -> None:
            body.extend(chunk)
            if more:  # paused between two chunks of the stream: count who holds a connection now
                seen.append((len(body), _settled_count(probe, baseline)))

        assert _asgi_get(LEDGER, token, slow_client) == 200
    lines = body.decode().splitlines()
    assert len(lines) == 1 + 21  # the header, 20 usage entries and the signup grant
    assert len(seen) >= 5  # the header, then one pause after each chunk of 5
    assert all(held == baseline for _, held in seen), (baseline, seen)


@pytest.mark.django_db(transaction=True)
def test_a_big_export_to_a_slow_client_leaves_a_pool_of_one_connection_to_other_requests(bundled_data):
    """Through a real Daphne with DB_POOL_SIZE=1: while one client reads a big CSV slowly, the other
    requests of that process are answered (each chunk takes the one connection and gives it back)."""
    org = make_org(name="Big Export")
    owner = owner_of(org)
    with connection.cursor() as cursor:  # 30 000 usage entries, fast
        cursor.execute(
            "INSERT INTO billing_ledgerentry (id, organization_id, kind, amount, balance_after, model, "
            "input_tokens, output_tokens, specialist_name, description, created_at) "
            "SELECT gen_random_uuid(), %s, 'usage', -0.000123, 1, 'gpt-4o-mini', 10, 5, '', '', "
            "TIMESTAMPTZ '2026-06-01' + n * INTERVAL '1 second' FROM generate_series(1, 30000) AS n",
            [org.pk],
        )
    token = issue_tokens(user=owner).access
    headers = {"Authorization": f"Bearer {token}"}
    server = Daphne(server_env({"DB_POOL_SIZE": "1", "DB_POOL_TIMEOUT": "3"}))
    try:
        answers: list[int] = []
        done = threading.Event()

        def others() -> None:
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as other:
                while not done.is_set():
                    answers.append(other.get("/billing/credits/balance").status_code)
                    time.sleep(0.05)

        text = []
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=60) as slow,
            slow.stream("GET", LEDGER, headers={"Accept": "text/csv"}) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-disposition"].startswith("attachment")
            other_thread = threading.Thread(target=others)
            other_thread.start()
            for chunk in response.iter_text():
                text.append(chunk)
                time.sleep(0.01)  # a slow reader
            done.set()
            other_thread.join()
        lines = "".join(text).count("\n")
    finally:
        server.stop()
    assert lines == 1 + 30000 + 1  # the header, the entries and the signup grant
    assert answers, "the other client was answered meanwhile"
    assert set(answers) == {200}, answers
