"""Turns started with an org API key through a real Daphne (§5): the stream, the async send and the
WebSocket take the key; the session has no creator but the key, the ledger names the key and no
user; a member key reads only its own sessions; Idempotency-Key is scoped to the key; revoking the
key closes its open sockets with 4401 at once."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync

from accounts.services import issue_tokens
from billing.models import LedgerEntry
from chat.models import ChatSession
from orgs.models import ApiKey, Role
from tests.chat.test_stream_e2e import parse_sse
from tests.conftest import make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.orgs.test_api_key_auth import new_key

pytestmark = pytest.mark.django_db(transaction=True)


def _client(server, secret: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def test_a_key_streams_a_turn_billed_to_the_key(daphne_server, fake_llm, bundled_data):
    org = make_org(name="Keyed Streams")
    owner = owner_of(org)
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=1000)
    secret = new_key(org, role=Role.MEMBER)
    key = ApiKey.all_orgs.get(prefix=secret.split("_")[1])
    fake_llm.script(Scenario(chunks=["Hi ", "there."], usage=(1000, 500)))
    with _client(daphne_server, secret) as client:
        response = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "Hello?"})
        assert response.status_code == 200, response.text
        events = parse_sse(response.text)
        assert [name for _, name, _ in events] == ["session", "delta", "delta", "usage", "done"]
        session_id = events[0][2]["sessionId"]
        listed = client.get("/api/chat/sessions").json()
        assert [row["id"] for row in listed["results"]] == [session_id]
        assert listed["results"][0]["createdBy"] is None
        assert listed["results"][0]["apiKeyId"] == str(key.pk)
        ledger = client.get("/billing/credits/usage").json()["results"]
    usage = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert usage.user_id is None
    assert usage.api_key_id == key.pk
    assert [row["apiKeyId"] for row in ledger if row["kind"] == "usage"] == [str(key.pk)]
    session = ChatSession.all_orgs.get(pk=session_id)
    assert session.created_by_id is None
    assert session.created_by_api_key_id == key.pk
    # the owner's own session is not the member key's to read
    mine = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner, title="mine")
    with _client(daphne_server, secret) as client:
        assert client.get(f"/api/chat/sessions/{mine.pk}").status_code == 404
        assert client.get(f"/api/chat/sessions/{session_id}").status_code == 200
    # another member key does not see the first key's session either
    with _client(daphne_server, new_key(org, role=Role.MEMBER)) as other:
        assert other.get(f"/api/chat/sessions/{session_id}").status_code == 404
        assert other.get("/api/chat/sessions").json()["count"] == 0


def test_idempotency_keys_are_scoped_to_the_api_key(daphne_server, bundled_data):
    org = make_org(name="Keyed Idempotency")
    specialist = make_specialist(org)
    first, second = new_key(org), new_key(org)
    body = {"specialistId": str(specialist.pk), "message": "Once, please."}
    headers = {"Idempotency-Key": "same-key-1"}
    with _client(daphne_server, first) as a, _client(daphne_server, second) as b:
        one = a.post("/api/chat/async", json=body, headers=headers)
        again = a.post("/api/chat/async", json=body, headers=headers)
        other = b.post("/api/chat/async", json=body, headers=headers)
    assert one.status_code == 202, one.text
    assert again.json()["messageId"] == one.json()["messageId"]  # the first key's repeat: replayed
    assert other.status_code == 202
    assert other.json()["messageId"] != one.json()["messageId"]  # another key's: its own turn
    assert ChatSession.all_orgs.filter(organization=org).count() == 2


def test_a_revoked_keys_socket_closes_4401_at_once(daphne_server, bundled_data):
    org = make_org(name="Keyed Sockets")
    owner = owner_of(org)
    specialist = make_specialist(org)
    secret = new_key(org, role=Role.ADMIN)
    key = ApiKey.all_orgs.get(prefix=secret.split("_")[1])
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner, title="t")
    url = daphne_server.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/"
    owner_token = issue_tokens(user=owner).access

    def revoke() -> None:  # through the server, as an admin would: it announces on the channel layer
        response = httpx.delete(
            f"{daphne_server.url}/orgs/{org.pk}/api-keys/{key.pk}",
            headers={"Authorization": f"Bearer {owner_token}"},
            timeout=30,
        )
        assert response.status_code == 204

    async def run() -> tuple[dict, int, float]:
        async with websockets.connect(url, subprotocols=["bearer", secret]) as socket:
            await socket.send(json.dumps({"type": "message", "message": "Hello over the socket"}))
            first = json.loads(await asyncio.wait_for(socket.recv(), timeout=20))
            while True:  # the turn runs to its end first
                event = json.loads(await asyncio.wait_for(socket.recv(), timeout=20))
                if event["event"] in ("done", "error"):
                    break
            revoked_at = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, revoke)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(socket.recv(), timeout=20)
            return first, info.value.rcvd.code, time.monotonic() - revoked_at

    first, code, lasted = async_to_sync(run)()
    assert first["event"] == "session"
    assert code == 4401
    assert lasted < 5  # announced at once, not at the next periodic re-check (WEBSOCKET_RECHECK_SECONDS)
    usage = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert (usage.user_id, usage.api_key_id) == (None, key.pk)

    # the revoked key opens no new socket
    async def reopen() -> int:
        async with websockets.connect(url, subprotocols=["bearer", secret]) as socket:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(socket.recv(), timeout=10)
            return info.value.rcvd.code

    assert async_to_sync(reopen)() == 4401
