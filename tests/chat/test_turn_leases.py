"""A running turn holds a lease (``heartbeat_at``) that its process renews; maintenance fails a
turn whose lease ran out (its worker or server died), gives its holds back and tells its
watchers. Nothing is billed for tokens that were never recorded, and nothing is run twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import AsyncClient
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.services import issue_tokens
from billing import services as billing
from billing.models import CreditAccount, LedgerEntry, Reservation
from chat.models import ChatSession, Message
from chat.services import fail_stuck_turns
from leancore.maintenance import TASK_PATH, ensure_scheduled
from tests.conftest import client_for, make_org, make_specialist, owner_of
from tests.fakes.llm_server import Scenario


@pytest.fixture
def running_turn(org, bundled_data):
    """An async turn its worker started (a lease taken), plus the hold of a second tool round."""
    owner = owner_of(org)
    specialist = make_specialist(org)
    body = (
        client_for(owner)
        .post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json")
        .json()
    )
    message = Message.all_orgs.get(pk=body["messageId"])
    now = timezone.now()
    Message.all_orgs.filter(pk=message.pk).update(status="running", started_at=now, heartbeat_at=now)
    second = billing.reserve(
        org=org, model=specialist.model, input_tokens=50, max_output_tokens=50, message_id=message.pk
    )
    return message, second.reservation_id


def _listen(group: str):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return lambda: async_to_sync(layer.receive)(channel)


@pytest.mark.django_db
def test_a_turn_whose_lease_ran_out_is_failed_its_holds_released_and_its_watchers_told(
    org, running_turn, django_capture_on_commit_callbacks
):
    message, second_hold = running_turn
    receive = _listen(ChatSession(pk=message.session_id).group_name)
    assert fail_stuck_turns() == 0  # the lease is fresh: the turn is alive
    Message.all_orgs.filter(pk=message.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert fail_stuck_turns() == 1
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "worker_lost")
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert not Reservation.all_orgs.filter(message_id=message.pk, status="active").exists()
    assert Reservation.all_orgs.get(pk=second_hold).status == "released"
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage").exists()  # nothing billed
    event = receive()  # the turn's final event, numbered and published as the turn's own events are
    assert (event["type"], event["message_id"]) == ("chat.events", str(message.pk))
    [(event_id, name, data)] = event["events"]
    assert (event_id, name, data["code"]) == (1, "error", "worker_lost")
    assert fail_stuck_turns() == 0  # once only


@pytest.mark.django_db
def test_a_maintenance_run_left_running_by_a_killed_worker_does_not_stop_the_chain():
    DBTaskResult.objects.all().delete()
    assert ensure_scheduled() is True
    DBTaskResult.objects.filter(task_path=TASK_PATH).update(status="RUNNING")  # its worker was killed
    assert ensure_scheduled() is True  # a new worker schedules the chain again
    assert DBTaskResult.objects.filter(task_path=TASK_PATH, status="READY").count() == 1


@pytest.mark.django_db(transaction=True)
async def test_a_long_turn_renews_its_lease_while_it_runs(bundled_data, fake_llm, settings):
    settings.TURN_HEARTBEAT_SECONDS = 0.2

    def setup():
        org = make_org(name="Long")
        return make_specialist(org, model="gpt-4o-mini"), issue_tokens(user=owner_of(org)).access

    specialist, token = await database_sync_to_async(setup)()
    fake_llm.script(Scenario(chunks=[f"w{i} " for i in range(12)], delay=0.1))
    response = await AsyncClient().post(
        "/api/chat/stream",
        {"specialistId": str(specialist.pk), "message": "long"},
        content_type="application/json",
        headers={"accept": "text/event-stream", "authorization": f"Bearer {token}"},
    )
    beats = []
    async for chunk in response.streaming_content:
        if b"event: delta" in chunk:
            message = await Message.all_orgs.filter(role="assistant", session__specialist=specialist).afirst()
            beats.append(message.heartbeat_at)
    assert len(set(beats)) >= 3, beats  # renewed several times over 1.2 s
    assert beats == sorted(beats)


@pytest.mark.django_db(transaction=True)  # the job reads the database from a thread of its own
def test_a_queued_turn_that_could_not_be_loaded_is_failed_as_maintenance_fails_one(org, bundled_data, settings):
    """Loading a queued turn raised (here: its hold is missing): the turn fails through the same path
    as a lost one: its holds given back, ``turn.failed`` announced, its watchers told and its log
    ended with that error (so it replays)."""
    from chat import resume
    from chat.jobs import run_queued_message
    from chat.replay import store
    from tests.webhooks.conftest import admin_context
    from webhooks import services as webhooks
    from webhooks.models import Event

    settings.MCP_ALLOW_PRIVATE_NETWORKS = True
    webhooks.create_webhook(context=admin_context(org), url="http://127.0.0.1:9/hook", events=["turn.failed"])
    specialist = make_specialist(org)
    body = (
        client_for(owner_of(org))
        .post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json")
        .json()
    )
    message = Message.all_orgs.get(pk=body["messageId"])
    hold = message.reservation_id
    Message.all_orgs.filter(pk=message.pk).update(reservation_id=None)  # a queued turn always has one
    receive = _listen(ChatSession(pk=message.session_id).group_name)
    with pytest.raises(LookupError):
        async_to_sync(run_queued_message)(message.pk)
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "llm_unavailable")
    assert Reservation.all_orgs.get(pk=hold).status == "released"
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
    assert Event.all_orgs.filter(organization=org, type="turn.failed", subject_id=message.pk).count() == 1
    event = receive()
    assert (event["type"], event["message_id"]) == ("chat.events", str(message.pk))
    assert [(event_id, name) for event_id, name, _ in event["events"]] == [(1, "error")]
    state = resume.read_turn_state(org_id=org.pk, message_id=message.pk)
    replayed = async_to_sync(resume.replay_after)(state=state, after=0, replay=store())
    assert [(e.id, e.name, e.data["code"]) for e in replayed.events] == [(1, "error", "llm_unavailable")]
