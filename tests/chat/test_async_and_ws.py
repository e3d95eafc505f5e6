"""Async turns through a real db_worker process; the WebSocket through Channels' communicator
and through Daphne (with Redis as the channel layer between the worker and the server)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from accounts.services import issue_tokens
from billing.models import CreditAccount, LedgerEntry
from chat.models import ChatSession, Message
from leancore.asgi import application
from tests.conftest import PASSWORD, add_member, client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.servers import Daphne, redis_url_for_tests, run_worker_batch, server_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def org_setup(bundled_data):
    org = make_org(name="Async Co")
    return org, owner_of(org)


def test_async_turn_runs_in_a_real_worker_process(org_setup, fake_llm, daphne_server):
    org, owner = org_setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(chunks=["Done ", "later."], usage=(2000, 100)))
    client = client_for(owner)
    response = client.post(
        "/api/chat/async", {"specialistId": str(specialist.pk), "message": "Work on it"}, format="json"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    message = Message.all_orgs.get(pk=body["messageId"])
    assert message.status == "queued"
    held = CreditAccount.all_orgs.get(organization=org).reserved
    assert held > 0  # the worst case is held before anything is queued
    result = run_worker_batch(daphne_server.env)
    assert result.returncode == 0, result.stderr
    message.refresh_from_db()
    assert (message.status, message.content) == ("completed", "Done later.")
    assert message.started_at is not None
    assert message.completed_at is not None
    # 2000×15/1e6 + 100×60/1e6 = 0.036
    assert LedgerEntry.all_orgs.get(organization=org, kind="usage").amount == Decimal("-0.036000")
    account = CreditAccount.all_orgs.get(organization=org)
    assert (account.balance, account.reserved) == (Decimal("99.964000"), Decimal(0))
    detail = client.get(f"/api/chat/sessions/{body['sessionId']}").json()
    assert [m["status"] for m in detail["messages"]] == ["completed", "completed"]
    assert detail["messages"][1]["usage"] == {"inputTokens": 2000, "outputTokens": 100, "credits": "0.036000"}


def test_async_failure_is_recorded(org_setup, fake_llm, daphne_server):
    org, owner = org_setup
    specialist = make_specialist(org, model="gpt-4o-mini")
    fake_llm.script(Scenario(status=500), Scenario(status=500))
    body = (
        client_for(owner)
        .post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json")
        .json()
    )
    assert run_worker_batch(daphne_server.env).returncode == 0
    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.error_code) == ("failed", "llm_unavailable")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0


def test_async_idempotency(org_setup):
    org, owner = org_setup
    specialist = make_specialist(org)
    client = client_for(owner)
    payload = {"specialistId": str(specialist.pk), "message": "Once"}
    first = client.post("/api/chat/async", payload, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    again = client.post("/api/chat/async", payload, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json() == again.json()
    assert Message.all_orgs.filter(role="assistant").count() == 1
    Message.all_orgs.filter(pk=first.json()["messageId"]).update(status="completed")
    assert (
        client.post("/api/chat/async", payload, format="json", HTTP_IDEMPOTENCY_KEY="abc").json()["status"]
        == "completed"
    )
    other = client.post("/api/chat/async", {**payload, "message": "Twice"}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"


def test_a_turn_whose_worker_died_is_failed_not_stuck(org_setup):
    from chat.services import fail_stuck_turns

    org, owner = org_setup
    specialist = make_specialist(org)
    body = (
        client_for(owner)
        .post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json")
        .json()
    )
    Message.all_orgs.filter(pk=body["messageId"]).update(
        status="running", started_at=timezone.now() - timedelta(hours=1)
    )
    assert fail_stuck_turns() == 1
    message = Message.all_orgs.get(pk=body["messageId"])
    assert (message.status, message.error_code) == ("failed", "worker_lost")


# --- WebSocket through Channels' communicator ------------------------------------------------------


async def _connect(path: str, subprotocols=None) -> tuple[WebsocketCommunicator, bool, object]:
    communicator = WebsocketCommunicator(application, path, subprotocols=subprotocols)
    connected, subprotocol = await communicator.connect()
    return communicator, connected, subprotocol


async def _events_until(communicator: WebsocketCommunicator, last: str, timeout: float = 10) -> list[dict]:
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["event"] in (last, "error"):
            return frames


@pytest.fixture
def ws_session(org_setup):
    org, owner = org_setup
    specialist = make_specialist(org)
    session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner, title="t")
    return org, owner, specialist, session


@pytest.mark.asyncio
async def test_websocket_rejects_missing_or_bad_tokens(ws_session):
    _, _, _, session = ws_session
    for path in (f"/ws/chat/sessions/{session.pk}/", f"/ws/chat/sessions/{session.pk}/?token=garbage"):
        communicator, connected, _ = await _connect(path)
        assert connected
        closed = await communicator.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4401}


@pytest.mark.asyncio
async def test_websocket_hides_sessions_the_caller_may_not_read(ws_session):
    org, owner, _, session = ws_session
    member = await database_sync_to_async(add_member)(org)
    outsider = await database_sync_to_async(lambda: owner_of(make_org(name="Else")))()
    for user in (member, outsider):
        token = await database_sync_to_async(lambda u=user: issue_tokens(user=u).access)()
        communicator, _, _ = await _connect(f"/ws/chat/sessions/{session.pk}/?token={token}")
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}


@pytest.mark.asyncio
async def test_websocket_session_id_that_is_no_uuid_is_not_found(ws_session):
    """The route lets through any 36 hex digits and dashes: one that is no UUID is a missing session."""
    _, owner, _, _ = ws_session
    token = await database_sync_to_async(lambda: issue_tokens(user=owner).access)()
    communicator, connected, _ = await _connect(f"/ws/chat/sessions/{'-' * 36}/?token={token}")
    assert connected
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}


@pytest.mark.asyncio
async def test_websocket_send_a_message_and_watch_the_turn(ws_session):
    org, owner, _, session = ws_session
    token = await database_sync_to_async(lambda: issue_tokens(user=owner).access)()
    communicator, connected, subprotocol = await _connect(f"/ws/chat/sessions/{session.pk}/", ["bearer", token])
    assert connected
    assert subprotocol == "bearer"
    await communicator.send_json_to({"type": "message", "message": "Hello over the socket"})
    frames = await _events_until(communicator, "done")
    names = [f["event"] for f in frames]
    assert names[0] == "session"
    assert names[-2:] == ["usage", "done"]
    assert "delta" in names
    assert frames[0]["data"]["sessionId"] == str(session.pk)
    await communicator.send_json_to({"type": "nonsense"})
    assert (await communicator.receive_json_from(timeout=5))["data"]["code"] == "validation_error"
    await communicator.disconnect()
    messages = await database_sync_to_async(lambda: list(session.messages.values_list("role", "status")))()
    assert messages == [("user", "completed"), ("assistant", "completed")]


@pytest.mark.asyncio
async def test_async_turn_run_by_an_embedded_worker_thread_reaches_the_socket(ws_session):
    """The quick start's single process: a worker thread publishes through the in-process layer."""
    from chat.jobs import run_queued_message

    org, owner, specialist, session = ws_session
    token = await database_sync_to_async(lambda: issue_tokens(user=owner).access)()
    communicator, _, _ = await _connect(f"/ws/chat/sessions/{session.pk}/?token={token}")
    response = await database_sync_to_async(
        lambda: client_for(owner).post(
            "/api/chat/async",
            {"specialistId": str(specialist.pk), "message": "In the background", "sessionId": str(session.pk)},
            format="json",
        )
    )()
    message_id = response.json()["messageId"]
    worker = threading.Thread(target=lambda: async_to_sync(run_queued_message)(uuid.UUID(message_id)))
    worker.start()
    frames = await _events_until(communicator, "done")
    await asyncio.get_running_loop().run_in_executor(None, worker.join)
    # every event once, in order, with its turn's id (the thread's events reach the server's loop)
    assert [frame["id"] for frame in frames] == list(range(1, len(frames) + 1))
    done = {"messageId": message_id, "finishReason": "stop"}
    assert frames[-1] == {"event": "done", "data": done, "messageId": message_id, "id": len(frames)}
    await communicator.disconnect()


# --- WebSocket through Daphne, async turn in a worker process, Redis between them --------------------


@pytest.fixture(scope="module")
def redis_daphne(django_db_setup, django_db_blocker, _fake_llm_server):
    """A Daphne process on the tests' Redis, shared by this module's tests (none of them stops it)."""
    redis_url = redis_url_for_tests()
    env = server_env({"REDIS_URL": redis_url, "OPENAI_BASE_URL": f"{_fake_llm_server.url}/v1", "OPENAI_API_KEY": "x"})
    with django_db_blocker.unblock():
        server = Daphne(env)
    server.env = env
    yield server
    server.stop()


def test_websocket_through_daphne_sees_an_async_turn_from_a_worker_process(ws_session, redis_daphne, fake_llm):
    org, owner, specialist, session = ws_session
    token = issue_tokens(user=owner).access
    fake_llm.script(Scenario(chunks=["from ", "the ", "worker"], usage=(10, 3)))
    specialist.model = "gpt-4o-mini"
    specialist.save()
    ws_url = redis_daphne.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/"

    async def watch() -> list[dict]:
        async with websockets.connect(ws_url, subprotocols=["bearer", token]) as socket:
            assert socket.subprotocol == "bearer"
            response = await database_sync_to_async(
                lambda: client_for(owner).post(
                    "/api/chat/async",
                    {"specialistId": str(specialist.pk), "message": "bg", "sessionId": str(session.pk)},
                    format="json",
                )
            )()
            assert response.status_code == 202
            loop = asyncio.get_running_loop()
            worker = loop.run_in_executor(None, run_worker_batch, redis_daphne.env)
            frames = []
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
                frames.append(frame)
                if frame["event"] in ("done", "error"):
                    break
            assert (await worker).returncode == 0
            return frames

    frames = async_to_sync(watch)()
    assert [f["event"] for f in frames] == ["session", "delta", "delta", "delta", "usage", "done"]
    assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == "from the worker"


def test_websocket_through_daphne_closes_4401_without_token(ws_session, daphne_server):
    _, _, _, session = ws_session
    ws_url = daphne_server.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/"

    async def run():
        async with websockets.connect(ws_url) as socket:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(socket.recv(), timeout=10)
            return info.value.rcvd.code

    assert async_to_sync(run)() == 4401


# well past every internal timeout: the channel layer's blocking receive (5 s), redis' default socket
# timeout (5 s), and the settings' socket timeout (10 s) and health-check interval (15 s)
IDLE_SECONDS = 32


def test_websocket_over_redis_stays_open_when_idle_and_survives_a_bad_frame(ws_session, redis_daphne, fake_llm):
    """A socket left idle stays open (no 1011 from a redis read timeout); a frame that is not JSON
    gets a validation_error frame and the socket still starts a turn afterwards."""
    org, owner, specialist, session = ws_session
    token = issue_tokens(user=owner).access
    fake_llm.script(Scenario(chunks=["still ", "here"], usage=(10, 2)))
    specialist.model = "gpt-4o-mini"
    specialist.save()
    ws_url = redis_daphne.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/?token={token}"

    async def run() -> tuple[dict, dict, list[dict]]:
        async with websockets.connect(ws_url) as socket:
            with pytest.raises(TimeoutError):  # nothing arrives, and the socket is not closed meanwhile
                await asyncio.wait_for(socket.recv(), timeout=IDLE_SECONDS)
            await socket.send("this is not json")
            not_json = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            await socket.send(json.dumps(["a", "list"]))
            wrong_shape = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            for bad in ('{"type": "message", "message": "\\u0000"}', "[" * 5000 + "]" * 5000, '{"type": "message"}'):
                await socket.send(bad)
                refused = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
                assert (refused["event"], refused["data"]["code"]) == ("error", "validation_error"), (bad[:40], refused)
            await socket.send(json.dumps({"type": "message", "message": "are you there?"}))
            frames = []
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
                frames.append(frame)
                if frame["event"] in ("done", "error"):
                    return not_json, wrong_shape, frames

    not_json, wrong_shape, frames = async_to_sync(run)()
    assert (not_json["event"], not_json["data"]["code"]) == ("error", "validation_error")
    assert (wrong_shape["event"], wrong_shape["data"]["code"]) == ("error", "validation_error")
    assert [f["event"] for f in frames][-3:] == ["delta", "usage", "done"]
    assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == "still here"


async def _admin_socket(ws_session):
    """An admin of the session's org (who may read the owner's session) on an open socket."""
    org, owner, _, session = ws_session
    admin = await database_sync_to_async(lambda: add_member(org, role="admin"))()
    token = await database_sync_to_async(lambda: issue_tokens(user=admin).access)()
    communicator, connected, _ = await _connect(f"/ws/chat/sessions/{session.pk}/?token={token}")
    assert connected
    return org, owner, admin, session, communicator


@pytest.mark.asyncio
async def test_removing_a_member_closes_their_open_socket_at_once(ws_session):
    from orgs import services as org_services
    from orgs.context import context_for

    org, owner, admin, _, communicator = await _admin_socket(ws_session)

    def remove():
        context = context_for(owner, org.pk)
        org_services.remove_member(context=context, actor=owner, user_id=admin.pk)

    await database_sync_to_async(remove)()
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


@pytest.mark.asyncio
async def test_a_message_from_a_socket_whose_membership_is_gone_is_refused(ws_session):
    """Membership is checked again on every message, even if the removal notice never arrived."""
    from orgs.models import Membership

    org, _, admin, session, communicator = await _admin_socket(ws_session)
    await database_sync_to_async(lambda: Membership.all_orgs.filter(organization=org, user=admin).delete())()
    await communicator.send_json_to({"type": "message", "message": "Still here?"})
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    assert await database_sync_to_async(session.messages.count)() == 0


@pytest.mark.asyncio
async def test_a_socket_sending_too_many_messages_is_closed_4429(ws_session, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "chat": "1/min"}
    *_, session, communicator = await _admin_socket(ws_session)
    await communicator.send_json_to({"type": "message", "message": "One"})
    await _events_until(communicator, "done")
    await communicator.send_json_to({"type": "message", "message": "Two"})
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    assert await database_sync_to_async(session.messages.count)() == 2  # the first turn only


@pytest.mark.asyncio
async def test_a_user_opening_too_many_sockets_is_closed_4429(ws_session, settings):
    """Connections are throttled per user (``THROTTLE_WEBSOCKET``), whichever session or token they
    name; another user is not affected."""
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "websocket": "2/min"}
    org, owner, _, session = ws_session
    path = f"/ws/chat/sessions/{session.pk}/?token="
    tokens = await database_sync_to_async(lambda: [issue_tokens(user=owner).access for _ in range(3)])()
    opened = [await _connect(path + token) for token in tokens[:2]]
    assert all(connected for _, connected, _ in opened)
    refused, connected, _ = await _connect(path + tokens[2])
    assert connected  # accepted, so that the client can read why it is closed
    assert await refused.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    for communicator, _, _ in opened:  # the open ones stay open
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()
    *_, communicator = await _admin_socket(ws_session)  # another user has their own count
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_frame_over_the_limit_closes_the_socket_1009(ws_session):
    from chat.consumers import MAX_FRAME_BYTES

    *_, session, communicator = await _admin_socket(ws_session)
    await communicator.send_to(text_data='{"type": "message", "message": "' + "x" * MAX_FRAME_BYTES + '"}')
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}
    assert await database_sync_to_async(session.messages.count)() == 0


# --- Redis goes away ---------------------------------------------------------------------------

GONE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: every operation fails at once


@pytest.mark.asyncio
async def test_a_websocket_closes_1013_when_the_channel_layer_is_gone(ws_session, settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [GONE_REDIS]}}
    }
    channel_layers.backends.pop("default", None)
    try:
        _, owner, _, session = ws_session
        token = await database_sync_to_async(lambda: issue_tokens(user=owner).access)()
        communicator, _, _ = await _connect(f"/ws/chat/sessions/{session.pk}/?token={token}")
        assert await communicator.receive_output(timeout=10) == {"type": "websocket.close", "code": 1013}
    finally:
        channel_layers.backends.pop("default", None)


def test_throttles_fail_open_when_the_cache_is_gone(org_setup, caplog):
    """HTTP keeps working without Redis: logins and chat sends are answered, the throttles say in
    the log that they were not applied."""
    from django.test import override_settings

    org, owner = org_setup
    specialist = make_specialist(org)
    gone = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": GONE_REDIS,
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }
    with override_settings(CACHES=gone):  # undone before the suite's own cache clean-up
        anon = client_for()
        wrong = anon.post("/auth/login", {"email": owner.email, "password": "wrong-Passw0rd"}, format="json")
        assert wrong.status_code == 401
        right = anon.post("/auth/login", {"email": owner.email, "password": PASSWORD}, format="json")
        assert right.status_code == 200
        sent = client_for(owner).post(
            "/api/chat/async", {"specialistId": str(specialist.pk), "message": "Hi"}, format="json"
        )
        assert sent.status_code == 202, sent.content
    assert "not applied for 5.0 s, the cache is unavailable" in caplog.text


def _close_code_through_daphne(url: str, frame: str | None = None) -> int:
    async def run() -> int:
        async with websockets.connect(url) as socket:
            if frame is not None:
                await socket.send(frame)
            await asyncio.wait_for(socket.wait_closed(), timeout=15)
            return socket.close_code

    return async_to_sync(run)()


def test_through_daphne_a_frame_over_the_limit_closes_1009(ws_session, daphne_server):
    """The close code the consumer picks is the one the client sees (Daphne's autobahn accepted
    only 1000 and 3000-4999, and answered 1009 as an internal error, 1011)."""
    from chat.consumers import MAX_FRAME_BYTES

    _, owner, _, session = ws_session
    token = issue_tokens(user=owner).access
    url = daphne_server.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/?token={token}"
    frame = '{"type": "message", "message": "' + "x" * MAX_FRAME_BYTES + '"}'
    assert _close_code_through_daphne(url, frame) == 1009
    assert session.messages.count() == 0


def test_through_daphne_a_socket_closes_1013_when_redis_is_gone(ws_session, django_db_blocker):
    """A server whose Redis is gone still answers HTTP; its WebSockets close with 1013."""
    _, owner, _, session = ws_session
    with django_db_blocker.unblock():
        server = Daphne(server_env({"REDIS_URL": GONE_REDIS}))
    try:
        assert httpx.get(f"{server.url}/api/schema/", timeout=10).status_code == 200
        token = issue_tokens(user=owner).access
        url = server.url.replace("http", "ws") + f"/ws/chat/sessions/{session.pk}/?token={token}"
        assert _close_code_through_daphne(url) == 1013
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_redis_going_away_under_an_open_socket_closes_it_1013(ws_session, monkeypatch):
    """The layer's receive fails once the socket is open: the consumer gets ``layer.unavailable``
    and closes 1013 instead of crashing (1011)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from core import layers

    layer = layers.RedisChannelLayer(hosts=[GONE_REDIS])

    async def joined(group, channel):
        return None

    async def gone(channel):
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(layer, "group_add", joined)
    monkeypatch.setattr(layer, "group_discard", joined)
    monkeypatch.setattr(layers.BaseRedisChannelLayer, "receive", lambda self, channel: gone(channel))
    monkeypatch.setattr("channels.consumer.get_channel_layer", lambda alias="default": layer)
    _, owner, _, session = ws_session
    token = await database_sync_to_async(lambda: issue_tokens(user=owner).access)()
    communicator, connected, _ = await _connect(f"/ws/chat/sessions/{session.pk}/?token={token}")
    assert connected
    assert await communicator.receive_output(timeout=10) == {"type": "websocket.close", "code": 1013}


@pytest.mark.asyncio
async def test_an_admin_demoted_to_member_loses_the_sessions_of_others_at_once(ws_session):
    from orgs import services as org_services
    from orgs.context import context_for

    org, owner, admin, _, communicator = await _admin_socket(ws_session)

    def demote():
        org_services.change_role(context=context_for(owner, org.pk), user_id=admin.pk, role="member")

    await database_sync_to_async(demote)()
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
