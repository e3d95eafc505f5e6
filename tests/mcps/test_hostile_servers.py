"""MCP servers that try to take the service down: one that streams without end (the response cap),
one that never answers (no database connection held meanwhile: through a real Daphne with a small
pool), one org syncing in a loop (the per-org throttle), and a name server that never answers (the
lookup threads stay bounded)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from asgiref.sync import async_to_sync

from accounts.services import issue_tokens
from core import url_guard as security
from mcps.client import call_tool_by_id
from mcps.models import Connection, Tool
from orgs.models import Role
from tests.conftest import add_member, assert_problem, client_for, make_org
from tests.fakes.llm_server import ThreadedServer
from tests.servers import Daphne, server_env

CAP = 256 * 1024
FLOOD_LIMIT = 1024 * 1024 * 1024  # the server would go on for a gigabyte


class Flood:
    """An HTTP server whose every answer is 200 and a body that does not end: ``json`` (a JSON
    response that never closes), ``events`` (one event line that never ends), each sent as fast as
    the client reads. ``sent`` counts the bytes it got out."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sent = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        content_type = b"application/json" if self.kind == "json" else b"text/event-stream"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        first = b'{"jsonrpc": "2.0", "id": 0, "result": "' if self.kind == "json" else b"event: message\ndata: "
        await send({"type": "http.response.body", "body": first, "more_body": True})
        chunk = b"x" * 65536
        while not gone.is_set() and self.sent < FLOOD_LIMIT:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.sent += len(chunk)
            await asyncio.sleep(0)
        watcher.cancel()


class Silent:
    """An HTTP server that reads each request and never answers; ``requests`` counts them."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        await asyncio.sleep(3600)


@pytest.fixture
def flood(request, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    settings.MCP_MAX_RESPONSE_BYTES = CAP
    settings.MCP_SYNC_TIMEOUT_SECONDS = 20
    settings.MCP_TOOL_TIMEOUT_SECONDS = 20
    app = Flood(request.param)
    with ThreadedServer(app) as server:
        app.url = f"{server.url}/mcp"
        yield app


def _sync(client, org, connection_id):
    return client.post(f"/orgs/{org.pk}/mcps/{connection_id}/sync")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flood", "transport"),
    [("json", "streamable_http"), ("events", "streamable_http"), ("events", "sse")],
    indirect=["flood"],
)
def test_a_sync_against_a_flooding_server_fails_with_bounded_memory(admin_user, org, flood, transport):
    client = client_for(admin_user)
    body = {"name": "Flood", "url": flood.url, "transport": transport}
    created = client.post(f"/orgs/{org.pk}/mcps", body, format="json").json()
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = _sync(client, org, created["id"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    problem = assert_problem(response, 502, "mcp_unreachable")
    assert f"larger than {CAP} bytes" in problem["detail"]
    assert time.monotonic() - started < 15  # the cap ended it, not the time limit
    assert peak < 24 * 1024 * 1024, peak  # the response was never held whole
    assert flood.sent < 64 * 1024 * 1024  # it stopped reading long before the server stopped sending
    stored = Connection.all_orgs.get(pk=created["id"])
    assert stored.status == Connection.Status.ERROR
    assert "larger than" in stored.last_error


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("flood", ["json"], indirect=True)
def test_a_flooding_tool_call_becomes_a_tool_error(org, flood):
    connection = Connection.all_orgs.create(organization=org, name="Flood", url=flood.url, transport="streamable_http")
    tool = Tool.all_orgs.create(organization=org, connection=connection, name="anything")
    result, is_error = async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=tool.pk, arguments={})
    assert is_error
    assert f"larger than {CAP} bytes" in result
    assert flood.sent < 64 * 1024 * 1024


@pytest.mark.django_db
def test_syncs_are_throttled_per_org(admin_user, org, other_org, mcp_server, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "mcp_sync": "3/min"}
    client = client_for(admin_user)
    body = {"name": "Tools", "url": mcp_server.url("streamable_http"), "transport": "streamable_http"}
    created = client.post(f"/orgs/{org.pk}/mcps", body, format="json").json()
    for _ in range(3):
        assert _sync(client, org, created["id"]).status_code == 200
    refused = _sync(client_for(add_member(org, role=Role.ADMIN)), org, created["id"])  # any admin: the org's rate
    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) > 0
    other = client_for(add_member(other_org, role=Role.ADMIN))
    theirs = other.post(f"/orgs/{other_org.pk}/mcps", body, format="json").json()
    assert _sync(other, other_org, theirs["id"]).status_code == 200  # another org's syncs are its own


@pytest.mark.django_db(transaction=True)
def test_syncs_to_a_silent_server_do_not_take_the_pool_from_other_orgs():
    """Six syncs wait on a server that never answers while the server has a pool of two database
    connections; another org's request is still answered at once (a held connection per sync would
    leave it waiting DB_POOL_TIMEOUT, then 503)."""
    silent = Silent()
    attacker, bystander = make_org(name="Attacker"), make_org(name="Bystander")
    attacker_token = issue_tokens(user=add_member(attacker, role=Role.ADMIN)).access
    bystander_token = issue_tokens(user=add_member(bystander, role=Role.MEMBER)).access
    with ThreadedServer(silent) as hanging:
        connection = Connection.all_orgs.create(
            organization=attacker, name="Silent", url=f"{hanging.url}/mcp", transport="streamable_http"
        )
        env = server_env(
            {
                "DB_POOL_SIZE": "2",
                "DB_POOL_TIMEOUT": "3",
                "MCP_SYNC_TIMEOUT_SECONDS": "15",
                "THROTTLE_MCP_SYNC": "100/min",
            }
        )
        server = Daphne(env)
        try:
            sync_url = f"{server.url}/orgs/{attacker.pk}/mcps/{connection.pk}/sync"
            headers = {"Authorization": f"Bearer {attacker_token}"}
            with ThreadPoolExecutor(6) as pool:
                syncs = [pool.submit(httpx.post, sync_url, headers=headers, timeout=60) for _ in range(6)]
                deadline = time.monotonic() + 30
                while silent.requests < 6 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert silent.requests >= 6  # every sync is now waiting on the silent server
                started = time.monotonic()
                answer = httpx.get(
                    f"{server.url}/orgs/{bystander.pk}/mcps",
                    headers={"Authorization": f"Bearer {bystander_token}"},
                    timeout=30,
                )
                assert answer.status_code == 200, answer.text
                assert time.monotonic() - started < 2.5
                assert all(sync.done() is False for sync in syncs)  # they were still waiting meanwhile
                results = [sync.result() for sync in syncs]
            assert {result.status_code for result in results} == {502}
            assert {result.json()["code"] for result in results} == {"mcp_unreachable"}
        finally:
            server.stop()


# --- a name server that never answers ------------------------------------------------------


@pytest.fixture
def stuck_resolver(monkeypatch):
    """getaddrinfo never answers for names under ``.stuck.test`` until the test lets it go."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".stuck.test"):
            release.wait(30)
            raise socket.gaierror("no answer")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(security, "RESOLVE_TIMEOUT_SECONDS", 0.5)
    yield release
    release.set()
    deadline = time.monotonic() + 10
    while security._lookup_slots._value < security.LOOKUP_THREADS and time.monotonic() < deadline:
        time.sleep(0.02)


def _mcp_dns_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("mcp-dns"))


def test_a_resolver_that_never_answers_cannot_exhaust_the_lookup_threads(settings, stuck_resolver):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    outcomes: list[tuple[str, float]] = []

    def check(index: int) -> None:
        started = time.monotonic()
        try:
            security.check_url(f"https://host{index}.stuck.test/mcp")
            outcomes.append(("allowed", time.monotonic() - started))
        except security.ResolverBusyError:
            outcomes.append(("busy", time.monotonic() - started))
        except security.UrlNotAllowedError:
            outcomes.append(("timeout", time.monotonic() - started))

    with ThreadPoolExecutor(40) as pool:
        list(pool.map(check, range(40)))
    kinds = [kind for kind, _ in outcomes]
    assert kinds.count("timeout") <= security.LOOKUP_THREADS
    assert kinds.count("busy") >= 40 - security.LOOKUP_THREADS
    assert max(took for _, took in outcomes) < 2  # nobody queued behind a stuck lookup
    assert max(took for kind, took in outcomes if kind == "busy") < 0.3  # refused at once
    assert _mcp_dns_threads() <= security.LOOKUP_THREADS
    stuck_resolver.set()  # the name server answers again: the threads come back
    deadline = time.monotonic() + 5
    while security._lookup_slots._value < security.LOOKUP_THREADS and time.monotonic() < deadline:
        time.sleep(0.02)
    assert security.resolve("127.0.0.1", 80) == ["127.0.0.1"]


@pytest.mark.django_db
def test_a_busy_resolver_answers_503_to_a_new_connection(
    admin_user, org, other_org, mcp_server, settings, stuck_resolver
):
    """One org names hosts under a silent name server, as many at once as there are lookup threads: it
    holds only its share of them (LOOKUPS_PER_ORG), its next connection is 503, and another org still
    connects (its lookup gets a thread) and syncs."""
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    url = mcp_server.url("streamable_http")
    settings.MCP_ALLOWED_PRIVATE_URLS = [url]
    with ThreadPoolExecutor(security.LOOKUP_THREADS) as pool:
        stuck = [
            pool.submit(security.check_url, f"https://h{i}.stuck.test/mcp", org_id=org.pk)
            for i in range(security.LOOKUP_THREADS)
        ]
        time.sleep(0.1)
        body = {"name": "x", "url": "https://another.stuck.test/mcp", "transport": "streamable_http"}
        response = client_for(admin_user).post(f"/orgs/{org.pk}/mcps", body, format="json")
        assert_problem(response, 503, "service_unavailable")
        assert response["Retry-After"]
        other = client_for(add_member(other_org, role=Role.ADMIN))
        theirs = other.post(
            f"/orgs/{other_org.pk}/mcps", {"name": "t", "url": url, "transport": "streamable_http"}, format="json"
        )
        assert theirs.status_code == 201, theirs.content  # its host was looked up meanwhile
        assert other.post(f"/orgs/{other_org.pk}/mcps/{theirs.json()['id']}/sync").status_code == 200
        outcomes = []
        for future in stuck:
            try:
                future.result()
            except security.ResolverBusyError:
                outcomes.append("busy")
            except security.UrlNotAllowedError:
                outcomes.append("timeout")
        assert outcomes.count("timeout") == security.LOOKUPS_PER_ORG
        assert outcomes.count("busy") == security.LOOKUP_THREADS - security.LOOKUPS_PER_ORG
