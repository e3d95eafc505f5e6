"""Abuse of an org's MCP connections by its own members, by outsiders, and by the server itself.

- The per-org sync and write throttles count only requests that passed the org, role and connection
  checks: an outsider or a member who loops on the sync route spends nothing of the admins' rate.
- The response cap is one budget per call: a server that answers many pages each under the cap
  still fails the sync, and the tools stored stay bounded (count, name, description, input schema).
"""

from __future__ import annotations

import json
import uuid

import pytest

from mcps import client as mcp_client
from mcps.models import Connection, Tool
from orgs.models import Role
from tests.conftest import add_member, assert_problem, client_for, make_org
from tests.fakes.llm_server import ThreadedServer

pytestmark = pytest.mark.django_db

CAP = 256 * 1024


def _sync(client, org, connection_id):
    return client.post(f"/orgs/{org.pk}/mcps/{connection_id}/sync")


# --- throttles after the checks -------------------------------------------------------------------


def test_an_outsider_looping_on_the_sync_route_spends_nothing_of_the_orgs_rate(admin_user, org, mcp_server, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "mcp_sync": "3/min"}
    outsider = client_for(add_member(make_org(name="Evil"), role=Role.OWNER))
    for _ in range(6):  # not a member here: 404 each time, and no rate spent
        assert_problem(_sync(outsider, org, uuid.uuid4()), 404, "not_found")
    member = client_for(add_member(org, role=Role.MEMBER))
    for _ in range(6):  # a member: 403 each time, and no rate spent
        assert_problem(_sync(member, org, uuid.uuid4()), 403, "permission_denied")
    admin = client_for(admin_user)
    for _ in range(6):  # an admin naming no connection of the org: 404, no rate spent
        assert_problem(_sync(admin, org, uuid.uuid4()), 404, "not_found")
    body = {"name": "Tools", "url": mcp_server.url("streamable_http"), "transport": "streamable_http"}
    created = admin.post(f"/orgs/{org.pk}/mcps", body, format="json").json()
    for _ in range(3):
        assert _sync(admin, org, created["id"]).status_code == 200
    assert_problem(_sync(admin, org, created["id"]), 429, "rate_limited")  # the rate still holds


def test_connection_writes_are_throttled_per_org_after_the_role_check(admin_user, org, other_org, settings):
    """Each create or update looks a host name up: an org writes THROTTLE_MCP_WRITE a minute; a
    member's refused writes spend nothing, and another org's writes are its own."""
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "mcp_write": "3/min"}
    member = client_for(add_member(org, role=Role.MEMBER))
    body = {"name": "x", "url": "http://127.0.0.1:9/mcp", "transport": "streamable_http"}
    for _ in range(5):
        assert_problem(member.post(f"/orgs/{org.pk}/mcps", body, format="json"), 403, "permission_denied")
    admin = client_for(admin_user)
    created = admin.post(f"/orgs/{org.pk}/mcps", body, format="json")
    assert created.status_code == 201
    path = f"/orgs/{org.pk}/mcps/{created.json()['id']}"
    assert admin.put(path, {**body, "url": "http://127.0.0.1:10/mcp"}, format="json").status_code == 200
    assert admin.post(f"/orgs/{org.pk}/mcps", body, format="json").status_code == 201
    refused = admin.put(path, {**body, "url": "http://127.0.0.1:11/mcp"}, format="json")
    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) > 0
    assert_problem(admin.post(f"/orgs/{org.pk}/mcps", body, format="json"), 429, "rate_limited")
    assert Connection.all_orgs.get(pk=created.json()["id"]).url == "http://127.0.0.1:10/mcp"
    other = client_for(add_member(other_org, role=Role.ADMIN))
    assert other.post(f"/orgs/{other_org.pk}/mcps", body, format="json").status_code == 201


# --- a server that pages, lists too much, or names too long ----------------------------------------


class Pager:
    """A streamable-HTTP MCP server (JSON answers) whose tools/list has ``pages`` pages of
    ``per_page`` tools, each described by ``description`` bytes, named ``name`` (formatted with the
    page and index) and with ``schema`` as its input schema."""

    def __init__(self, *, pages=1, per_page=2, description=10, name="t{page}_{i}", schema=None) -> None:
        self.pages, self.per_page, self.description, self.name = pages, per_page, description, name
        self.schema = schema or {"type": "object"}
        self.lists = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body or b"{}") if scope["method"] == "POST" else {}
        if "id" not in request:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if request["method"] == "initialize":
            result = {
                "protocolVersion": request["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "pager", "version": "1"},
            }
        elif request["method"] == "tools/list":
            self.lists += 1
            page = int((request.get("params") or {}).get("cursor") or 0)
            tools = [
                {
                    "name": self.name.format(page=page, i=i),
                    "description": "d" * self.description,
                    "inputSchema": self.schema,
                }
                for i in range(self.per_page)
            ]
            result = {"tools": tools}
            if page + 1 < self.pages:
                result["nextCursor"] = str(page + 1)
        else:
            result = {}
        out = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})


@pytest.fixture
def pager_sync(admin_user, org, settings):
    """Syncs a connection to a ``Pager``: (the response, the connection)."""
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    settings.MCP_MAX_RESPONSE_BYTES = CAP
    client = client_for(admin_user)

    def sync(app: Pager):
        with ThreadedServer(app) as server:
            body = {"name": "p", "url": f"{server.url}/mcp", "transport": "streamable_http"}
            created = client.post(f"/orgs/{org.pk}/mcps", body, format="json")
            assert created.status_code == 201, created.content
            connection_id = created.json()["id"]
            return _sync(client, org, connection_id), Connection.all_orgs.get(pk=connection_id)

    return sync


def _failed(response, connection, reason: str) -> None:
    assert_problem(response, 502, "mcp_unreachable")
    assert reason in response.json()["detail"]
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ERROR
    assert reason in connection.last_error
    assert not Tool.all_orgs.filter(connection=connection).exists()


def test_pages_each_under_the_cap_fail_once_the_call_passes_it(pager_sync):
    """Twenty pages of 200 KiB (twenty tools of 10 KiB each, every one within the limits), each page
    under the 256 KiB cap: the call's budget is spent on the second page."""
    app = Pager(pages=20, per_page=20, description=10 * 1024)
    response, connection = pager_sync(app)
    _failed(response, connection, f"larger than {CAP} bytes")
    assert app.lists <= 3  # cut as soon as the budget was spent, not after twenty pages


def test_a_server_listing_too_many_tools_fails_the_sync(pager_sync):
    app = Pager(pages=6, per_page=100)
    response, connection = pager_sync(app)
    _failed(response, connection, f"more than {mcp_client.MAX_TOOLS} tools")


def test_a_tool_description_too_long_fails_the_sync(pager_sync):
    response, connection = pager_sync(Pager(description=mcp_client.MAX_DESCRIPTION_CHARS + 1))
    _failed(response, connection, f"description longer than {mcp_client.MAX_DESCRIPTION_CHARS} characters")


def test_a_tool_input_schema_too_large_fails_the_sync(pager_sync):
    schema = {"type": "object", "description": "s" * mcp_client.MAX_SCHEMA_BYTES}
    response, connection = pager_sync(Pager(per_page=1, schema=schema))
    _failed(response, connection, f"input schema larger than {mcp_client.MAX_SCHEMA_BYTES} bytes")


def test_a_tool_name_too_long_for_the_database_is_a_502_recorded_on_the_connection(pager_sync):
    response, connection = pager_sync(Pager(name="t{page}_{i}" + "x" * 300))
    _failed(response, connection, f"longer than {mcp_client.MAX_NAME_CHARS} characters")


def test_a_nul_character_in_a_tool_fails_the_sync(pager_sync):
    response, connection = pager_sync(Pager(name="t{page}_{i}\x00"))
    _failed(response, connection, "NUL character")


def test_tools_within_every_limit_are_stored(pager_sync):
    response, connection = pager_sync(Pager(pages=3, per_page=2, description=1000))
    assert response.status_code == 200, response.content
    assert Tool.all_orgs.filter(connection=connection).count() == 6
