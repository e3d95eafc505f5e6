"""MCP connections, sync and tools against a real MCP server built with the official SDK."""

from __future__ import annotations

import uuid
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connection as db

from chat.tools import execute_tool, tool_plan
from core.crypto import decrypt_json
from mcps.client import call_tool_by_id
from mcps.models import Connection, Tool
from orgs.models import AuditEntry
from tests.conftest import assert_problem, client_for, make_specialist

pytestmark = pytest.mark.django_db

TRANSPORTS = ["streamable_http", "sse"]


def base(org) -> str:
    return f"/orgs/{org.pk}/mcps"


def create(client, org, **body):
    return client.post(base(org), body, format="json")


@pytest.fixture
def admin_client(admin_user):
    return client_for(admin_user)


def connect(admin_client, org, mcp_server, transport="streamable_http", **extra) -> dict:
    body = {"name": f"Test {transport}", "url": mcp_server.url(transport), "transport": transport, **extra}
    response = create(admin_client, org, **body)
    assert response.status_code == 201, response.content
    return response.json()


def test_create_hides_and_encrypts_credentials(admin_client, org, mcp_server):
    body = connect(admin_client, org, mcp_server, authType="bearer", token="s3cret-token-value")
    assert body["hasCredentials"] is True
    assert body["status"] == "pending"
    assert body["toolCount"] == 0
    assert body["catalogKey"] is None
    assert body["lastError"] is None
    assert "token" not in body
    assert set(body) == {
        "id",
        "name",
        "catalogKey",
        "transport",
        "url",
        "authType",
        "hasCredentials",
        "status",
        "lastError",
        "lastSyncedAt",
        "toolCount",
        "enabled",
        "createdAt",
    }
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials_encrypted FROM mcps_connection WHERE id = %s", [body["id"]])
        raw = cursor.fetchone()[0]
    assert "s3cret-token-value" not in raw
    assert decrypt_json(raw) == {"token": "s3cret-token-value"}
    listed = admin_client.get(base(org)).json()
    assert listed["count"] == 1
    assert "s3cret" not in str(listed)


def test_create_validation(admin_client, org, mcp_server):
    assert {"name", "url", "transport"} <= set(
        assert_problem(create(admin_client, org), 400, "validation_error")["errors"]
    )
    no_token = create(admin_client, org, name="x", url=mcp_server.url("sse"), transport="sse", authType="bearer")
    assert "token" in assert_problem(no_token, 400, "validation_error")["errors"]
    no_header = create(
        admin_client, org, name="x", url=mcp_server.url("sse"), transport="sse", authType="header", token="t"
    )
    assert "headerName" in assert_problem(no_header, 400, "validation_error")["errors"]
    bad = create(admin_client, org, name="x", url="not a url", transport="carrier-pigeon")
    assert {"url", "transport"} <= set(assert_problem(bad, 400, "validation_error")["errors"])
    assert (
        "catalogKey" in assert_problem(create(admin_client, org, catalogKey="nope"), 400, "validation_error")["errors"]
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/mcp",
        "http://localhost/mcp",
        "http://10.1.2.3/mcp",
        "http://192.168.0.10/mcp",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/mcp",
        "http://[fec0::1]/mcp",  # IPv6 site-local, which Python's is_private does not count
        "http://0.0.0.0/mcp",
        "http://example.com:99999/mcp",  # a port out of range
        "http://does-not-exist.invalid/mcp",
        "ftp://example.com/mcp",
    ],
)
def test_ssrf_guard(admin_client, org, settings, url):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    body = assert_problem(create(admin_client, org, name="x", url=url, transport="sse"), 400, "url_not_allowed")
    assert "url" in body["errors"]
    assert Connection.all_orgs.count() == 0


def test_public_address_is_allowed(admin_client, org, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    assert create(admin_client, org, name="x", url="http://93.184.216.34/mcp", transport="sse").status_code == 201


def test_catalog_prefills(admin_client, org, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True  # no DNS for the well-known host here
    body = create(admin_client, org, catalogKey="linear", token="lin-token").json()
    assert (body["name"], body["transport"], body["url"], body["authType"], body["catalogKey"]) == (
        "Linear",
        "sse",
        "https://mcp.linear.app/sse",
        "bearer",
        "linear",
    )
    templated = create(admin_client, org, catalogKey="slack", token="x")
    assert "url" in assert_problem(templated, 400, "validation_error")["errors"]


def test_catalog_endpoint(member, anon):
    body = client_for(member).get("/mcp/catalog?pageSize=100").json()
    names = [entry["name"] for entry in body["results"]]
    assert names == sorted(names)
    keys = {entry["key"] for entry in body["results"]}
    assert {
        "github",
        "slack",
        "linear",
        "notion",
        "atlassian",
        "google-drive",
        "sentry",
        "stripe",
        "hubspot",
        "postgres",
    } <= keys
    assert set(body["results"][0]) == {"key", "name", "description", "transport", "urlTemplate", "authType", "docsUrl"}
    assert_problem(anon.get("/mcp/catalog"), 401, "not_authenticated")


def test_roles_and_tenancy(admin_client, member, owner, org, other_org, mcp_server):
    created = connect(admin_client, org, mcp_server)
    member_client = client_for(member)
    assert member_client.get(base(org)).status_code == 200
    assert_problem(
        create(member_client, org, name="x", url=mcp_server.url("sse"), transport="sse"), 403, "permission_denied"
    )
    assert_problem(member_client.post(f"{base(org)}/{created['id']}/sync"), 403, "permission_denied")
    assert_problem(member_client.delete(f"{base(org)}/{created['id']}"), 403, "permission_denied")
    # another org's path is a 404, header or not
    assert_problem(client_for(owner).get(base(other_org)), 404, "not_found")
    assert_problem(client_for(owner).get(f"/orgs/{uuid.uuid4()}/mcps"), 404, "not_found")
    foreign_admin = Connection.all_orgs.get(pk=created["id"])
    outsider_owner = other_org.memberships.get().user
    assert_problem(
        client_for(outsider_owner).put(f"{base(org)}/{foreign_admin.pk}", {"name": "x"}, format="json"),
        404,
        "not_found",
    )
    assert_problem(client_for(owner).get(f"{base(org)}/{uuid.uuid4()}/tools"), 404, "not_found")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_follows_pages_and_tracks_changes(admin_client, org, mcp_server, transport):
    created = connect(admin_client, org, mcp_server, transport)
    url = f"{base(org)}/{created['id']}"
    first = admin_client.post(f"{url}/sync")
    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["added"], body["updated"], body["removed"]) == (4, 0, 0)  # two pages of two
    assert sorted(t["name"] for t in body["tools"]) == ["add", "echo", "explode", "slow"]
    add = next(t for t in body["tools"] if t["name"] == "add")
    assert add["inputSchema"]["properties"]["a"]["type"] == "integer"  # schemas are not re-cased
    assert add["connectionId"] == created["id"]
    listed = admin_client.get(url.replace(created["id"], created["id"]) + "/tools").json()
    assert listed["count"] == 4
    # the tools page reads its connection without the tool count; the list's ordering by it still works
    by_count = admin_client.get(f"{url}/tools?ordering=-toolCount")
    assert by_count.status_code == 200, by_count.content
    assert by_count.json()["count"] == 4
    detail = admin_client.get(base(org)).json()["results"][0]
    assert (detail["status"], detail["toolCount"]) == ("connected", 4)
    assert detail["lastSyncedAt"]

    specialist = make_specialist(org)
    echo = Tool.all_orgs.get(connection_id=created["id"], name="echo")
    specialist.tools.add(echo, Tool.all_orgs.get(connection_id=created["id"], name="add"))

    server = mcp_server.server
    server.remove_tool("echo")
    server.remove_tool("add")

    def add(a: int, b: int) -> int:
        """Add two integers, carefully."""
        return a + b

    def multiply(a: int, b: int) -> int:
        """Multiply."""
        return a * b

    server.add_tool(add)
    server.add_tool(multiply)
    second = admin_client.post(f"{url}/sync").json()
    assert (second["added"], second["updated"], second["removed"]) == (1, 1, 1)
    assert sorted(t["name"] for t in second["tools"]) == ["add", "explode", "multiply", "slow"]
    assert [t.name for t in specialist.tools.all()] == ["add"]  # the vanished tool left the specialist
    assert admin_client.get(f"/specialists/{specialist.pk}").json()["toolIds"] == [
        str(Tool.all_orgs.get(connection_id=created["id"], name="add").pk)
    ]


@pytest.mark.parametrize(
    ("auth", "expected"), [("bearer", ("authorization", "Bearer tok-123")), ("header", ("x-api-key", "tok-123"))]
)
def test_credentials_reach_the_server(admin_client, org, mcp_server, auth, expected):
    extra = {"authType": auth, "token": "tok-123"}
    if auth == "header":
        extra["headerName"] = "X-Api-Key"
    created = connect(admin_client, org, mcp_server, **extra)
    assert admin_client.post(f"{base(org)}/{created['id']}/sync").status_code == 200
    name, value = expected
    assert mcp_server.server.seen_headers[-1].get(name) == value


def test_unreachable_server_keeps_tools_and_records_the_error(admin_client, org, mcp_server):
    created = connect(admin_client, org, mcp_server)
    url = f"{base(org)}/{created['id']}"
    admin_client.post(f"{url}/sync")
    closed = f"http://127.0.0.1:{_closed_port()}/mcp"
    assert admin_client.put(url, {"url": closed}, format="json").status_code == 200
    body = assert_problem(admin_client.post(f"{url}/sync"), 502, "mcp_unreachable")
    assert body["detail"]
    detail = admin_client.get(base(org)).json()["results"][0]
    assert detail["status"] == "error"
    assert detail["lastError"]
    assert detail["toolCount"] == 4


def test_slow_server_times_out(admin_client, org, mcp_server, settings):
    settings.MCP_SYNC_TIMEOUT_SECONDS = 1
    mcp_server.server.list_delay = 3
    created = connect(admin_client, org, mcp_server)
    body = assert_problem(admin_client.post(f"{base(org)}/{created['id']}/sync"), 502, "mcp_unreachable")
    assert "time" in body["detail"].lower()


def test_url_is_checked_again_at_connect_time(admin_client, org, mcp_server, settings):
    created = connect(admin_client, org, mcp_server)
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    body = assert_problem(admin_client.post(f"{base(org)}/{created['id']}/sync"), 502, "mcp_unreachable")
    assert "private" in body["detail"]


def test_update_and_delete(admin_client, org, mcp_server):
    created = connect(admin_client, org, mcp_server, authType="bearer", token="one")
    url = f"{base(org)}/{created['id']}"
    body = admin_client.put(url, {"name": "Renamed", "enabled": False}, format="json").json()
    assert (body["name"], body["enabled"], body["hasCredentials"]) == ("Renamed", False, True)
    admin_client.put(url, {"token": "two"}, format="json")
    assert decrypt_json(Connection.all_orgs.get(pk=created["id"]).credentials_encrypted) == {"token": "two"}
    body = admin_client.put(url, {"authType": "none"}, format="json").json()
    assert body["hasCredentials"] is False
    admin_client.post(f"{url}/sync")
    specialist = make_specialist(org)
    specialist.tools.set(Tool.all_orgs.filter(connection_id=created["id"]))
    assert admin_client.delete(url).status_code == 204
    assert specialist.tools.count() == 0
    assert_problem(admin_client.delete(url), 404, "not_found")


def test_tool_allow_list(admin_client, member, org, mcp_server):
    created = connect(admin_client, org, mcp_server)
    tools = admin_client.post(f"{base(org)}/{created['id']}/sync").json()["tools"]
    echo = next(t for t in tools if t["name"] == "echo")
    tool_url = f"{base(org)}/{created['id']}/tools/{echo['id']}"
    assert_problem(client_for(member).patch(tool_url, {"enabled": False}, format="json"), 403, "permission_denied")
    assert admin_client.patch(tool_url, {"enabled": False}, format="json").json()["enabled"] is False
    assert_problem(admin_client.patch(tool_url, {}, format="json"), 400, "validation_error")
    assert_problem(
        admin_client.patch(f"{base(org)}/{created['id']}/tools/{uuid.uuid4()}", {"enabled": True}, format="json"),
        404,
        "not_found",
    )
    specialist = make_specialist(org)
    # a blocked tool cannot be given to a specialist, and is not offered to the model
    blocked = admin_client.put(f"/specialists/{specialist.pk}", {"toolIds": [echo["id"]]}, format="json")
    assert "toolIds" in assert_problem(blocked, 400, "validation_error")["errors"]
    add = next(t for t in tools if t["name"] == "add")
    ok = admin_client.put(f"/specialists/{specialist.pk}", {"toolIds": [add["id"]]}, format="json")
    assert ok.json()["toolIds"] == [add["id"]]
    specialist.tools.add(Tool.all_orgs.get(pk=echo["id"]))
    specs, _ = tool_plan(specialist)
    assert [s.name for s in specs] == ["add"]


def test_tool_ids_of_another_org_are_refused(admin_client, org, other_org, mcp_server):
    foreign_conn = Connection.all_orgs.create(
        organization=other_org, name="f", url=mcp_server.url("sse"), transport="sse"
    )
    foreign_tool = Tool.all_orgs.create(organization=other_org, connection=foreign_conn, name="x")
    specialist = make_specialist(org)
    response = admin_client.put(f"/specialists/{specialist.pk}", {"toolIds": [str(foreign_tool.pk)]}, format="json")
    assert "toolIds" in assert_problem(response, 400, "validation_error")["errors"]


def test_model_facing_names_are_unique(org, mcp_server):
    first = Connection.all_orgs.create(organization=org, name="Alpha", url=mcp_server.url("sse"), transport="sse")
    second = Connection.all_orgs.create(
        organization=org, name="Beta Server", url=mcp_server.url("sse"), transport="sse"
    )
    specialist = make_specialist(org)
    specialist.tools.set(
        [
            Tool.all_orgs.create(organization=org, connection=first, name="search"),
            Tool.all_orgs.create(organization=org, connection=second, name="search"),
            Tool.all_orgs.create(organization=org, connection=second, name="only.here"),
        ]
    )
    specs, bindings = tool_plan(specialist)
    names = [s.name for s in specs]
    assert len(set(names)) == 3
    assert {"Alpha__search", "Beta_Server__search", "only_here"} == set(names)
    assert bindings["only_here"].remote_name == "only.here"


@pytest.mark.django_db(transaction=True)
def test_failing_disabled_or_deleted_tools_become_error_results(org, mcp_server):
    conn = Connection.all_orgs.create(
        organization=org, name="c", url=mcp_server.url("streamable_http"), transport="streamable_http"
    )
    explode = Tool.all_orgs.create(organization=org, connection=conn, name="explode")
    add = Tool.all_orgs.create(organization=org, connection=conn, name="add")
    assert async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=add.pk, arguments={"a": 1, "b": 2}) == (
        "3",
        False,
    )
    result, is_error = async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=explode.pk, arguments={})
    assert is_error
    conn.enabled = False
    conn.save()
    assert async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=add.pk, arguments={}) == (
        "This tool is disabled.",
        True,
    )
    assert async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=uuid.uuid4(), arguments={}) == (
        "This tool no longer exists.",
        True,
    )
    conn.enabled = True
    conn.url = f"http://127.0.0.1:{_closed_port()}/mcp"
    conn.save()
    result, is_error = async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=add.pk, arguments={"a": 1, "b": 2})
    assert is_error
    assert result.startswith("The tool failed")
    outcome = async_to_sync(execute_tool)(binding=None, arguments={})
    assert outcome.is_error


def test_sync_mcp_command_and_admin_action(org, mcp_server, client, django_user_model):
    Connection.all_orgs.create(
        organization=org, name="good", url=mcp_server.url("streamable_http"), transport="streamable_http"
    )
    out = StringIO()
    call_command("sync_mcp", "--org", org.slug, stdout=out)
    assert "1/1" in out.getvalue()
    assert "Synced 1 of 1" in out.getvalue()
    assert Tool.all_orgs.filter(organization=org).count() == 4
    bad = Connection.all_orgs.create(
        organization=org, name="bad", url=f"http://127.0.0.1:{_closed_port()}/mcp", transport="sse"
    )
    with pytest.raises(SystemExit):
        call_command("sync_mcp", stdout=StringIO())
    operator = django_user_model.objects.create_superuser(email="ops@x.test", password="x-Passw0rd-x")
    client.force_login(operator)
    sync = {"action": "sync_tools", "_selected_action": [str(bad.pk)], "apply": "1", "reason": "Their server is back"}
    response = client.post("/admin/mcps/connection/", sync, follow=True)
    assert response.status_code == 200
    bad.refresh_from_db()
    assert bad.status == "error"
    audit = AuditEntry.all_orgs.get(action="sync_mcp_connection", object_id=str(bad.pk))
    assert (audit.reason, audit.details["status"]) == ("Their server is back", "error")
    assert client.get(f"/admin/mcps/connection/{bad.pk}/change/").status_code == 200


def _closed_port() -> int:
    from tests.fakes.llm_server import free_port

    return free_port()


@pytest.mark.django_db(transaction=True)
def test_a_slow_tool_call_times_out_into_an_error_result(org, mcp_server, settings):
    settings.MCP_TOOL_TIMEOUT_SECONDS = 1
    conn = Connection.all_orgs.create(organization=org, name="c", url=mcp_server.url("sse"), transport="sse")
    slow = Tool.all_orgs.create(organization=org, connection=conn, name="slow")
    result, is_error = async_to_sync(call_tool_by_id)(org_id=org.pk, tool_id=slow.pk, arguments={"seconds": 5})
    assert is_error
    assert "time" in result.lower()
    conn.refresh_from_db()  # the connection says why
    assert (conn.status, conn.last_error) == ("error", "The MCP server did not answer in time.")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_name_that_rebinds_after_the_check_cannot_move_the_connection(mcp_server, settings, monkeypatch, transport):
    """DNS rebinding: the name is resolved once, for the check, and the connection goes to the
    address that was checked; a later lookup (which could now say 127.0.0.1) is never made."""
    import socket
    from urllib.parse import urlsplit

    from core import url_guard as security
    from mcps.client import Target, list_remote_tools

    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    real = urlsplit(mcp_server.url(transport))
    url = f"http://rebind.example:{real.port}{real.path}"
    # the check's lookup: one address, which stands here for an attacker's public one
    monkeypatch.setattr(security, "_resolve", lambda host, port: ["127.0.0.1"])
    monkeypatch.setattr(security, "_blocked", lambda address: address != "127.0.0.1")
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "rebind.example":
            lookups.append(host)
            raise socket.gaierror("the name points somewhere else now")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    tools = async_to_sync(list_remote_tools)(Target(url, transport, {}), time_limit=10)
    assert {tool.name for tool in tools} >= {"add"}
    assert lookups == []  # the connection went to the checked address, without asking DNS again


def test_a_pinned_connection_refuses_any_other_host():
    from core.url_guard import _PinnedBackend

    async def connect():
        return await _PinnedBackend("mcp.example", ["127.0.0.1"]).connect_tcp("elsewhere.example", 80)

    import httpcore2

    with pytest.raises(httpcore2.ConnectError, match="not the checked MCP host"):
        async_to_sync(connect)()
