"""``GET /api/chat/messages/{messageId}/events`` and ``onDisconnect`` on the stream: its tenancy and
refusals through the API client, and resuming real turns through a real Daphne server (without
Redis: the log of the server's process)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from redis import asyncio as aioredis

from accounts.services import issue_tokens
from billing.models import LedgerEntry, Reservation
from chat import resume, turns
from chat.models import Message
from chat.replay import RedisStore, TurnLog, store
from chat.services import fail_stuck_turns
from orgs.context import OrgContext
from orgs.models import Membership, Role
from tests.chat.test_stream_e2e import parse_sse
from tests.conftest import add_member, assert_problem, client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario
from tests.orgs.test_api_key_auth import key_client, new_key
from tests.servers import Daphne, redis_url_for_tests, server_env

EVENTS = ["session", "delta", "usage", "done"]


def _events_url(message_id: object) -> str:
    return f"/api/chat/messages/{message_id}/events"


def _turn(org, user, specialist, *, status: str = "completed", ended_ago: float = 1.0, code: str = "") -> uuid.UUID:
    """An assistant message of ``user``'s new session, made by the turn's prepare phase, then set to
    ``status`` as its end would."""
    membership = Membership.objects.for_org(org).get(user=user)
    context = OrgContext(org=org, membership=membership, is_staff=False)
    turn = turns.start_turn(context=context, specialist_id=specialist.pk, message="hello")
    ended = status in ("completed", "failed")
    Message.objects.for_org(org).filter(pk=turn.message_id).update(
        status=status,
        error_code=code,
        error=f"{code} detail" if code else "",
        completed_at=timezone.now() - timedelta(seconds=ended_ago) if ended else None,
    )
    return turn.message_id


def _kept(message_id: uuid.UUID, names: list[str]) -> None:
    """The turn's events, as its TurnLog keeps them (this process's log: the API client's server)."""

    async def write() -> None:
        log = TurnLog(message_id=message_id, group="", replay=store())
        for name in names:
            log.record(_event(name, message_id))
        await log.flush()

    async_to_sync(write)()


def _body(response) -> str:
    """A streamed answer of the API client (an async view's events), read whole."""

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)().decode()


def _event(name: str, message_id: uuid.UUID):
    from chat.calls import TurnEvent

    data = {"done": {"messageId": str(message_id), "finishReason": "stop"}, "delta": {"text": "hi"}}
    return TurnEvent(name, data.get(name, {}))


@pytest.fixture
def world(db, bundled_data):
    org = make_org(name="Resumers")
    owner = owner_of(org)
    member, other_member = add_member(org), add_member(org)
    admin = add_member(org, role=Role.ADMIN)
    specialist = make_specialist(org)
    return org, owner, member, other_member, admin, specialist


def test_a_turn_is_resumed_by_whoever_may_read_its_session_and_no_one_else(world):
    org, owner, member, other_member, admin, specialist = world
    message_id = _turn(org, member, specialist)
    _kept(message_id, EVENTS)
    for reader in (member, admin, owner):
        response = client_for(reader).get(_events_url(message_id), HTTP_LAST_EVENT_ID="2")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/event-stream")
        body = _body(response)
        assert [(eid, name) for eid, name, _ in parse_sse(body)] == [("3", "usage"), ("4", "done")]
    # another member's session: 404, as the session itself
    assert_problem(client_for(other_member).get(_events_url(message_id)), 404, "not_found")
    assert client_for(other_member).get(f"/api/chat/sessions/{_session_of(org, message_id)}").status_code == 404
    # another org: 404; that org named in X-Org-Id: 403
    stranger_org = make_org(name="Strangers")
    stranger = owner_of(stranger_org)
    assert_problem(client_for(stranger).get(_events_url(message_id)), 404, "not_found")
    assert_problem(client_for(stranger, org).get(_events_url(message_id)), 403, "not_a_member")
    # the user's own message of the turn, and an unknown id: 404
    user_message = Message.objects.for_org(org).get(role="user", session_id=_session_of(org, message_id))
    assert_problem(client_for(member).get(_events_url(user_message.pk)), 404, "not_found")
    assert_problem(client_for(member).get(_events_url(uuid.uuid4())), 404, "not_found")
    assert_problem(client_for().get(_events_url(message_id)), 401, "not_authenticated")


def _session_of(org, message_id: uuid.UUID) -> uuid.UUID:
    return Message.objects.for_org(org).get(pk=message_id).session_id


def test_org_api_keys_resume_as_their_role_allows(world):
    org, owner, member, _, _, specialist = world
    message_id = _turn(org, member, specialist)
    _kept(message_id, EVENTS)
    admin_key = key_client(new_key(org, role=Role.ADMIN))
    response = admin_key.get(_events_url(message_id), {"after": "3"})
    assert response.status_code == 200
    assert [name for _, name, _ in parse_sse(_body(response))] == ["done"]
    member_key = key_client(new_key(org, role=Role.MEMBER))  # a member key reads the sessions it started
    assert_problem(member_key.get(_events_url(message_id)), 404, "not_found")


def test_last_event_id_wins_over_after_and_bad_ids_are_400(world):
    org, _, member, _, _, specialist = world
    message_id = _turn(org, member, specialist)
    _kept(message_id, EVENTS)
    client = client_for(member)
    both = client.get(_events_url(message_id), {"after": "0"}, HTTP_LAST_EVENT_ID="3")
    assert [eid for eid, _, _ in parse_sse(_body(both))] == ["4"]
    for empty in ("", " "):  # an empty Last-Event-ID is no id: ?after= still counts
        rest = client.get(_events_url(message_id), {"after": "3"}, HTTP_LAST_EVENT_ID=empty)
        assert [eid for eid, _, _ in parse_sse(_body(rest))] == ["4"]
    everything = client.get(_events_url(message_id))
    assert [eid for eid, _, _ in parse_sse(_body(everything))] == ["1", "2", "3", "4"]
    bad = assert_problem(client.get(_events_url(message_id), HTTP_LAST_EVENT_ID="three"), 400, "validation_error")
    assert list(bad["errors"]) == ["Last-Event-ID"]
    bad = assert_problem(client.get(_events_url(message_id), {"after": "-1"}), 400, "validation_error")
    assert list(bad["errors"]) == ["after"]
    assert_problem(client.get(_events_url(message_id), HTTP_ACCEPT="application/json"), 406, "not_acceptable")
    head = client.head(_events_url(message_id))
    assert (head.status_code, head.content) == (200, b"")
    # the other methods are DRF's, as on the stream endpoint
    assert client.options(_events_url(message_id)).status_code == 200
    assert_problem(client.post(_events_url(message_id)), 405, "method_not_allowed")
    assert client.options("/api/chat/stream").status_code == 200
    assert_problem(client.get("/api/chat/stream"), 405, "method_not_allowed")


def test_events_are_410_after_the_window_and_503_when_they_were_not_kept(world, settings):
    org, _, member, _, _, specialist = world
    settings.STREAM_REPLAY_SECONDS = 60
    client = client_for(member)
    old = _turn(org, member, specialist, ended_ago=61)
    _kept(old, EVENTS)  # still in the log, but the window has passed
    problem = assert_problem(client.get(_events_url(old)), 410, "events_expired")
    assert "STREAM_REPLAY_SECONDS" in problem["detail"]
    lost = _turn(org, member, specialist, ended_ago=30)  # over, within the window, and nothing kept
    response = client.get(_events_url(lost))
    assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"]
    # a turn that never ran (its queue wait ran out): its error is its one event
    never = _turn(org, member, specialist, status="failed", code="queue_timeout", ended_ago=30)
    Message.objects.for_org(org).filter(pk=never).update(started_at=None)
    body = _body(client.get(_events_url(never)))
    assert parse_sse(body) == [("1", "error", {"code": "queue_timeout", "detail": "queue_timeout detail"})]


# --- real turns through Daphne ---------------------------------------------------------------


@pytest.fixture
def served(daphne_server, fake_llm, bundled_data, transactional_db):
    org = make_org(name="Resumed live")
    owner = owner_of(org)
    specialist = make_specialist(org, model="gpt-4o-mini", max_output_tokens=1000)
    client = httpx.Client(
        base_url=daphne_server.url, headers={"Authorization": f"Bearer {issue_tokens(user=owner).access}"}, timeout=30
    )
    yield org, specialist, client
    client.close()


def _resumed(client: httpx.Client, message_id: str, last_event_id: int) -> list[tuple[str, str, dict]]:
    response = client.get(_events_url(message_id), headers={"Last-Event-ID": str(last_event_id)})
    assert response.status_code == 200, response.text
    return parse_sse(response.text) if response.text.strip() else []


def test_a_real_turn_resumed_at_every_event_id_gives_exactly_the_rest_of_its_stream(served, fake_llm):
    org, specialist, client = served
    fake_llm.script(Scenario(chunks=["The ", "answer ", "is ", "42."], usage=(100, 4)))
    sent = client.post("/api/chat/stream", json={"specialistId": str(specialist.pk), "message": "What is it?"})
    original = parse_sse(sent.text)
    assert [name for _, name, _ in original] == ["session", "delta", "delta", "delta", "delta", "usage", "done"]
    message_id = original[0][2]["messageId"]
    for k in range(len(original) + 1):
        assert _resumed(client, message_id, k) == original[k:], k


def _wait_for_end(org, message_id: str) -> Message:
    deadline = time.monotonic() + 30
    while True:
        message = Message.objects.for_org(org).get(pk=message_id)
        if message.status not in ("queued", "running") or time.monotonic() > deadline:
            return message
        time.sleep(0.05)


def _first_events(client: httpx.Client, body: dict, count: int) -> list[tuple[str, str, dict]]:
    """Opens the stream, reads ``count`` events and goes away."""
    seen = ""
    with client.stream("POST", "/api/chat/stream", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            seen += line + "\n"
            if line == "" and seen.count("event: ") >= count:
                break
    return parse_sse(seen)


def test_a_turn_that_continues_without_its_client_is_billed_in_full_and_resumed(served, fake_llm):
    org, specialist, client = served
    chunks = [f"w{i} " for i in range(8)]
    fake_llm.script(Scenario(chunks=chunks, delay=0.1, usage=(1000, 8)))
    body = {"specialistId": str(specialist.pk), "message": "go on", "onDisconnect": "continue"}
    first = _first_events(client, body, 2)  # session and one delta, then the client goes away
    message_id = first[0][2]["messageId"]
    message = _wait_for_end(org, message_id)
    assert (message.status, message.content) == ("completed", "".join(chunks))
    entry = LedgerEntry.objects.for_org(org).get(kind="usage")
    assert (entry.input_tokens, entry.output_tokens) == (1000, 8)  # the provider's whole count
    assert entry.amount == -Decimal("0.015480")  # 1000×15/1e6 + 8×60/1e6
    rest = _resumed(client, message_id, int(first[-1][0]))
    ids = [int(eid) for eid, _, _ in first + rest]
    assert ids == list(range(1, len(ids) + 1))  # nothing missed, nothing twice
    assert [name for _, name, _ in rest][-2:] == ["usage", "done"]
    assert "".join(data["text"] for _, name, data in first + rest if name == "delta") == "".join(chunks)


def test_a_cancelled_turn_keeps_its_events_up_to_the_error(served, fake_llm):
    org, specialist, client = served
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(40)], delay=0.1, usage=(1000, 40)))
    first = _first_events(client, {"specialistId": str(specialist.pk), "message": "stop me"}, 3)
    message_id = first[0][2]["messageId"]
    message = _wait_for_end(org, message_id)
    assert (message.status, message.error_code) == ("failed", "client_disconnected")
    kept = _resumed(client, message_id, 0)
    assert kept[: len(first)] == first
    assert [name for _, name, _ in kept][-2:] == ["usage", "error"]
    assert kept[-1][2]["code"] == "client_disconnected"
    assert [int(eid) for eid, _, _ in kept] == list(range(1, len(kept) + 1))


def test_a_continued_turn_whose_server_dies_is_failed_by_maintenance_and_replayed_to_that_error(
    django_db_blocker, fake_llm, bundled_data, transactional_db
):
    """A turn that runs on without its client is recovered like any live turn: its server process
    is killed mid-turn, maintenance fails it once its lease has run out (its holds released), and
    its events, kept in Redis, replay up to where it died and end with that error."""
    env = server_env(
        {"REDIS_URL": redis_url_for_tests(), "OPENAI_BASE_URL": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "x"}
    )
    with django_db_blocker.unblock():
        server = Daphne(env)
    org = make_org(name="Died")
    specialist = make_specialist(org, model="gpt-4o-mini")
    token = issue_tokens(user=owner_of(org)).access
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(100)], delay=0.2))
    body = {"specialistId": str(specialist.pk), "message": "a long one", "onDisconnect": "continue"}

    async def logged(message_id: str) -> list:
        client = aioredis.Redis.from_url(env["REDIS_URL"])
        kept = await RedisStore(redis=lambda: client, prefix=env["REDIS_KEY_PREFIX"]).read(message_id, after=0)
        await client.aclose()
        return kept.events if kept else []

    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            first = _first_events(client, body, 3)
        message_id = first[0][2]["messageId"]
        while len(async_to_sync(logged)(message_id)) < len(first):  # what the client saw is kept
            time.sleep(0.05)
        server.process.kill()  # the process dies with the turn in it
        server.process.wait(timeout=10)
    finally:
        server.stop()
    assert Message.objects.for_org(org).get(pk=message_id).status == "running"
    assert fail_stuck_turns(lease=timedelta(microseconds=1)) == 1  # its lease, as if it had run out
    message = Message.objects.for_org(org).get(pk=message_id)
    assert (message.status, message.error_code) == ("failed", "worker_lost")
    assert not Reservation.objects.for_org(org).filter(status="active").exists()
    kept = async_to_sync(logged)(message_id)
    state = resume.TurnState(message_id, "failed", True, message.completed_at - timedelta(minutes=1), "worker_lost", "")

    async def replayed() -> list:
        client = aioredis.Redis.from_url(env["REDIS_URL"])
        store = RedisStore(redis=lambda: client, prefix=env["REDIS_KEY_PREFIX"])
        found = await resume.replay_after(state=state, after=0, replay=store)
        await client.aclose()
        return found.events

    events = async_to_sync(replayed)()
    assert [event.id for event in events] == list(range(1, len(kept) + 2))
    assert [(str(e.id), e.name, e.data) for e in events[: len(first)]] == first
    assert (events[-1].name, events[-1].data["code"]) == ("error", "worker_lost")
