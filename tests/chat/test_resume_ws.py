"""The WebSocket's ``resume`` frame and its frames' ids, through Channels' communicator (one process:
the in-process log and channel layer): each event of a turn once and in order, whatever the socket
missed before it opened, at every resume point."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from chat import turns, watchers
from chat.calls import TurnEvent
from chat.models import Message
from chat.replay import TurnLog
from leancore.asgi import application
from orgs.context import OrgContext
from orgs.models import Membership
from tests.conftest import client_for, watched_session

pytestmark = pytest.mark.django_db(transaction=True)

TURN = [
    TurnEvent("session", {"sessionId": "s"}),
    *(TurnEvent("delta", {"text": f"{i} "}) for i in range(4)),
    TurnEvent("usage", {"inputTokens": 1, "outputTokens": 4}),
    TurnEvent("done", {"finishReason": "stop"}),
]
N = len(TURN)
SYNC = {"type": "nonsense"}  # answered with an error frame once every frame before it was handled


@pytest.fixture
def chat(bundled_data):
    watched = watched_session("Sockets", model="local")
    org, owner = watched.org, watched.owner
    context = OrgContext(org=org, membership=Membership.objects.for_org(org).get(user=owner), is_staff=False)
    return org, owner, watched.specialist, watched.session, context, watched.token


async def _socket(session, token) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/chat/sessions/{session.pk}/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _frames_until(communicator: WebsocketCommunicator, last: str) -> list[dict]:
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=10)
        frames.append(frame)
        if frame["event"] == last or (frame["event"] == "error" and "id" in frame):
            return frames


async def _resumed(communicator: WebsocketCommunicator, message_id: str, after: int) -> list[dict]:
    """What a resume frame is answered with: every frame up to the SYNC frame's error."""
    await communicator.send_json_to({"type": "resume", "messageId": message_id, "after": after})
    await communicator.send_json_to(SYNC)
    frames = await _frames_until(communicator, "error")
    assert frames[-1]["data"]["code"] == "validation_error"
    assert "id" not in frames[-1]
    return frames[:-1]


def _new_turn(chat) -> str:
    _, _, specialist, session, context, _ = chat
    turn = turns.start_turn(context=context, specialist_id=specialist.pk, message="hi", session_id=session.pk)
    return str(turn.message_id)


async def test_every_frame_of_a_turn_has_its_id_and_a_finished_turn_is_resumed_at_every_id(chat):
    _, _, _, session, _, token = chat
    communicator = await _socket(session, token)
    await communicator.send_json_to({"type": "message", "message": "Hello over the socket"})
    frames = await _frames_until(communicator, "done")
    message_id = frames[0]["messageId"]
    assert [frame["id"] for frame in frames] == list(range(1, len(frames) + 1))
    assert {frame["messageId"] for frame in frames} == {message_id}
    for k in range(len(frames) + 2):
        assert await _resumed(communicator, message_id, k) == frames[k:], k
    await communicator.disconnect()


async def test_a_socket_opened_mid_turn_misses_nothing_at_every_resume_point(chat, monkeypatch, settings):
    """The turn had written j events (which no socket saw) when the socket opened and asked for the
    events after k; the rest then arrived live, in batches, through the group. For every j and k the
    socket sent exactly events k+1 … N, once each, in order: the log and the live fan-out agree at
    the seam (a live batch the socket skipped is filled from the log)."""
    monkeypatch.setattr(watchers, "WATCHERS_RECHECK_SECONDS", 0)  # every batch asks who watches
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "websocket": "1000/min"}  # a socket per case
    _, _, _, session, _, token = chat
    for j in range(N + 1):
        for k in range(N + 1):
            message_id = await database_sync_to_async(_new_turn)(chat)
            log = TurnLog(message_id=message_id, group=session.group_name)
            for event in TURN[:j]:
                log.record(event)
            await log.flush()
            communicator = await _socket(session, token)
            got = await _resumed(communicator, message_id, k)
            for index, event in enumerate(TURN[j:]):
                log.record(event)
                if index % 2:
                    await log.flush()
            await log.flush()
            if k < N and not (got and got[-1]["event"] == "done"):  # the rest arrives live
                got += await _frames_until(communicator, "done")
            assert [(frame["id"], frame["event"]) for frame in got] == [
                (i, event.name) for i, event in enumerate(TURN, 1)
            ][k:], (j, k)
            assert all(frame["messageId"] == message_id for frame in got)
            assert await communicator.receive_nothing(timeout=0.05)
            await communicator.disconnect()


async def test_a_socket_that_joins_mid_turn_gets_the_turn_from_its_first_event(chat, monkeypatch):
    """Without a resume frame too: the first live batch of a turn the socket has sent nothing of is
    completed from the log."""
    monkeypatch.setattr(watchers, "WATCHERS_RECHECK_SECONDS", 0)
    _, _, _, session, _, token = chat
    message_id = await database_sync_to_async(_new_turn)(chat)
    log = TurnLog(message_id=message_id, group=session.group_name)
    for event in TURN[:3]:
        log.record(event)
    await log.flush()
    communicator = await _socket(session, token)
    for event in TURN[3:]:
        log.record(event)
    await log.flush()
    frames = await _frames_until(communicator, "done")
    assert [frame["id"] for frame in frames] == list(range(1, N + 1))
    await communicator.disconnect()


async def test_a_socket_opened_after_a_202_gets_the_whole_turn_once(chat):
    """An async turn, run by a worker thread (the quick start's embedded worker), followed by a socket
    that opened after the 202 and asked for everything."""
    from chat.jobs import run_queued_message

    _, owner, specialist, session, _, token = chat
    response = await database_sync_to_async(
        lambda: client_for(owner).post(
            "/api/chat/async",
            {"specialistId": str(specialist.pk), "message": "later", "sessionId": str(session.pk)},
            format="json",
        )
    )()
    assert response.status_code == 202
    message_id = response.json()["messageId"]
    communicator = await _socket(session, token)
    assert await _resumed(communicator, message_id, 0) == []  # queued: nothing yet
    worker = threading.Thread(target=lambda: async_to_sync(run_queued_message)(uuid.UUID(message_id)))
    worker.start()
    frames = await _frames_until(communicator, "done")
    await asyncio.get_running_loop().run_in_executor(None, worker.join)
    assert [frame["id"] for frame in frames] == list(range(1, len(frames) + 1))
    assert frames[-1]["data"]["messageId"] == message_id
    await communicator.disconnect()


async def test_a_turn_failed_by_maintenance_ends_with_a_frame_of_its_turn_that_replay_agrees_with(chat):
    """Maintenance fails a turn whose process is gone (``worker_lost``): its watchers get the turn's
    ``error`` with its ``messageId`` and the next id, the same id a resume replays it with; the
    socket is then done with that turn (a resume from 0 gets the whole turn again)."""
    from chat.services import fail_stuck_turns

    _, _, _, session, _, token = chat
    message_id = await database_sync_to_async(_new_turn)(chat)
    log = TurnLog(message_id=message_id, group=session.group_name)
    for event in TURN[:3]:
        log.record(event)
    await log.flush()
    communicator = await _socket(session, token)
    assert [frame["id"] for frame in await _resumed(communicator, message_id, 0)] == [1, 2, 3]
    lost = timezone.now() - timedelta(hours=1)
    await database_sync_to_async(
        lambda: (
            Message.objects.across_orgs("the test's turn")
            .filter(pk=message_id)
            .update(status="running", started_at=lost, heartbeat_at=lost)
        )
    )()
    assert await database_sync_to_async(fail_stuck_turns)() == 1
    frame = await communicator.receive_json_from(timeout=10)
    assert frame == {
        "event": "error",
        "data": {"code": "worker_lost", "detail": frame["data"]["detail"]},
        "messageId": message_id,
        "id": 4,
    }
    await communicator.send_json_to({"type": "resume", "messageId": message_id, "after": 0})
    replayed = await _frames_until(communicator, "error")
    assert [(f["id"], f["event"]) for f in replayed] == [(1, "session"), (2, "delta"), (3, "delta"), (4, "error")]
    assert replayed[-1] == frame
    await communicator.disconnect()


async def test_resume_refusals_are_error_frames_and_the_socket_stays_open(chat, settings):
    org, owner, specialist, session, context, token = chat
    elsewhere = await database_sync_to_async(  # a turn of a new session of the same caller
        lambda: str(turns.start_turn(context=context, specialist_id=specialist.pk, message="x").message_id)
    )()
    communicator = await _socket(session, token)

    async def refusal(frame: dict) -> dict:
        await communicator.send_json_to(frame)
        return await communicator.receive_json_from(timeout=10)

    not_here = await refusal({"type": "resume", "messageId": elsewhere, "after": 0})  # another session's turn
    assert (not_here["event"], not_here["data"]["code"], not_here["messageId"]) == ("error", "not_found", elsewhere)
    assert "id" not in not_here
    bad = await refusal({"type": "resume", "messageId": elsewhere, "after": -1})
    assert (bad["data"]["code"], list(bad["data"]["errors"])) == ("validation_error", ["after"])
    bad = await refusal({"type": "resume", "messageId": "nope"})
    assert (bad["data"]["code"], list(bad["data"]["errors"])) == ("validation_error", ["messageId"])
    settings.STREAM_REPLAY_SECONDS = 60
    old = await database_sync_to_async(_new_turn)(chat)
    await database_sync_to_async(
        lambda: (
            Message.objects.for_org(org)
            .filter(pk=old)
            .update(status="completed", completed_at=timezone.now() - timedelta(seconds=61))
        )
    )()
    expired = await refusal({"type": "resume", "messageId": old, "after": 0})
    assert (expired["data"]["code"], expired["messageId"]) == ("events_expired", old)
    assert await _resumed(communicator, await database_sync_to_async(_new_turn)(chat), 0) == []  # still open
    await communicator.disconnect()
