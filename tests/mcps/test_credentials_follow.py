"""Credentials follow their server: a connection moved to another origin does not carry its stored
token there, and the URLs the API shows hide their userinfo and query values (against the SDK-built
MCP server, whose two transports listen on two origins)."""

from __future__ import annotations

import pytest

from core.crypto import decrypt_json
from mcps.models import Connection
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user):
    return client_for(admin_user)


def base(org) -> str:
    return f"/orgs/{org.pk}/mcps"


def bearer_connection(admin_client, org, mcp_server, token="old-server-token") -> dict:  # noqa: S107
    body = {
        "name": "CRM",
        "url": mcp_server.url("streamable_http"),
        "transport": "streamable_http",
        "authType": "bearer",
        "token": token,
    }
    response = admin_client.post(base(org), body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def sync(admin_client, org, connection_id) -> None:
    response = admin_client.post(f"{base(org)}/{connection_id}/sync")
    assert response.status_code == 200, response.content


def test_a_url_on_another_origin_drops_the_stored_token(admin_client, org, mcp_server):
    created = bearer_connection(admin_client, org, mcp_server)
    sync(admin_client, org, created["id"])
    assert mcp_server.server.seen_headers[-1]["authorization"] == "Bearer old-server-token"

    # the attack: point the connection at a server of one's choosing (another port, so another
    # origin), keep the stored token, and sync
    moved = admin_client.put(
        f"{base(org)}/{created['id']}", {"url": mcp_server.url("sse"), "transport": "sse"}, format="json"
    )
    assert moved.status_code == 200, moved.content
    assert moved.json()["hasCredentials"] is False
    mcp_server.server.seen_headers.clear()
    sync(admin_client, org, created["id"])
    assert mcp_server.server.seen_headers
    assert all("authorization" not in headers for headers in mcp_server.server.seen_headers)
    assert decrypt_json(Connection.all_orgs.get(pk=created["id"]).credentials_encrypted) == {}


def test_new_credentials_given_with_the_new_url_go_to_the_new_server(admin_client, org, mcp_server):
    created = bearer_connection(admin_client, org, mcp_server)
    body = {"url": mcp_server.url("sse"), "transport": "sse", "token": "new-server-token"}
    moved = admin_client.put(f"{base(org)}/{created['id']}", body, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["hasCredentials"] is True
    sync(admin_client, org, created["id"])
    assert mcp_server.server.seen_headers[-1]["authorization"] == "Bearer new-server-token"


def test_a_header_name_alone_is_no_new_credential_for_another_origin(admin_client, org, mcp_server):
    created = bearer_connection(admin_client, org, mcp_server)
    body = {"url": mcp_server.url("sse"), "transport": "sse", "authType": "header", "headerName": "X-Key"}
    response = admin_client.put(f"{base(org)}/{created['id']}", body, format="json")
    assert response.status_code == 400, response.content
    assert "token" in response.json()["errors"]
    stored = Connection.all_orgs.get(pk=created["id"])
    assert stored.url == mcp_server.url("streamable_http")
    assert decrypt_json(stored.credentials_encrypted) == {"token": "old-server-token"}


def test_the_same_origin_keeps_the_credentials(admin_client, org, mcp_server):
    created = bearer_connection(admin_client, org, mcp_server)
    url = mcp_server.url("streamable_http") + "?tenant=acme"
    response = admin_client.put(f"{base(org)}/{created['id']}", {"url": url}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["hasCredentials"] is True
    sync(admin_client, org, created["id"])
    assert mcp_server.server.seen_headers[-1]["authorization"] == "Bearer old-server-token"


def test_urls_are_shown_without_userinfo_or_query_values(admin_client, member, org, mcp_server):
    plain = mcp_server.url("streamable_http")
    secret = plain.replace("http://", "http://alice:pa55word@") + "?apiKey=sk-live-123&debug=1&bare"
    created = admin_client.post(
        base(org), {"name": "CRM", "url": secret, "transport": "streamable_http"}, format="json"
    ).json()
    masked = f"{plain}?apiKey=***&debug=***&***"
    assert created["url"] == masked
    for client in (admin_client, client_for(member)):
        listed = client.get(base(org)).json()["results"]
        assert [item["url"] for item in listed] == [masked]
        assert "sk-live-123" not in str(listed)
        assert "pa55word" not in str(listed)
    assert Connection.all_orgs.get(pk=created["id"]).url == secret


def test_a_put_of_the_masked_url_keeps_the_stored_one(admin_client, org, mcp_server):
    plain = mcp_server.url("streamable_http")
    secret = f"{plain}?apiKey=sk-live-123"
    body = {"name": "CRM", "url": secret, "transport": "streamable_http", "authType": "bearer", "token": "tok"}
    created = admin_client.post(base(org), body, format="json").json()
    sync(admin_client, org, created["id"])
    response = admin_client.put(f"{base(org)}/{created['id']}", {"url": created["url"], "name": "CRM 2"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "connected"  # nothing changed that needs a new sync
    assert response.json()["hasCredentials"] is True
    stored = Connection.all_orgs.get(pk=created["id"])
    assert (stored.url, stored.name) == (secret, "CRM 2")
    assert decrypt_json(stored.credentials_encrypted) == {"token": "tok"}
