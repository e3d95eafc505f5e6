"""Deliveries to a real endpoint (``receiver``: it checks every signature with the README's snippet),
made by the worker's delivery jobs after the cause commits: signed, at least once, retried on the
contract's schedule, never for another org, through the outbound URL guard at send time."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from billing import services as billing
from core import log_context, url_guard
from tests.conftest import client_for, make_org, owner_of
from tests.webhooks.conftest import admin_context, hook, run_webhook_jobs
from tests.webhooks.receiver import Answer
from webhooks import jobs, sending, services
from webhooks.jobs import QUEUE, RETRY_DELAYS
from webhooks.models import Delivery, Event, Webhook

pytestmark = pytest.mark.django_db(transaction=True)

SIGNATURE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")


def _grant(org, amount: str = "5") -> None:
    billing.grant_credits(org=org, amount=Decimal(amount), reason="Top-up")


def test_a_committed_event_is_sent_after_commit_signed_with_the_api_representation(receiver):
    org = make_org(name="Signed")
    webhook = hook(receiver, org, "/signed", ["circuit.changed"])
    client = client_for(owner_of(org), org)
    opened = client.post("/billing/circuit/toggle", {"state": "open", "reason": "Spend spike"}, format="json")
    assert opened.status_code == 200
    assert receiver.received == []  # the request only wrote the event: the worker sends it
    assert run_webhook_jobs() == 1
    [got] = receiver.at("/signed")
    assert got.verified
    timestamp, _ = SIGNATURE.match(got.headers["LeanCore-Signature"]).groups()
    assert got.headers["Content-Type"] == "application/json"
    event = Event.all_orgs.get(type="circuit.changed")
    circuit = client.get("/billing/circuit").json()
    assert got.payload == {
        "id": str(event.pk),
        "type": "circuit.changed",
        "createdAt": got.payload["createdAt"],
        "orgId": str(org.pk),
        "data": {"id": got.payload["data"]["id"], **circuit},
    }
    delivery = Delivery.all_orgs.get()
    assert (delivery.status, delivery.attempt, delivery.response_status, delivery.error) == ("delivered", 1, 200, "")
    assert int(timestamp) == int(delivery.sent_at.timestamp())
    webhook.refresh_from_db()
    assert (webhook.last_status, webhook.last_delivery_at) == ("delivered", delivery.sent_at)
    shown = client.get(f"/orgs/{org.pk}/webhooks/{webhook.pk}").json()
    assert (shown["lastStatus"], shown["lastDeliveryAt"]) == ("delivered", shown["lastDeliveryAt"])
    assert shown["lastDeliveryAt"] is not None


def test_a_rolled_back_cause_sends_nothing(receiver):
    org = make_org(name="Rolled back")
    hook(receiver, org, "/rolled", ["circuit.changed", "alert.raised"])
    with transaction.atomic():
        billing.set_circuit(org=org, actor=owner_of(org), state="open", reason="never")
        assert Event.all_orgs.count() == 2  # written in the cause's transaction, with their jobs
        assert DBTaskResult.objects.filter(queue_name=QUEUE).count() == 2
        transaction.set_rollback(True)
    assert not Event.all_orgs.exists()
    assert not DBTaskResult.objects.filter(queue_name=QUEUE).exists()
    assert run_webhook_jobs() == 0
    assert receiver.received == []


def test_an_event_goes_only_to_its_own_orgs_subscribed_webhooks(receiver):
    first, second = make_org(name="First"), make_org(name="Second")
    hook(receiver, first, "/first", ["credits.granted"])
    hook(receiver, first, "/first-alerts", ["alert.raised"])
    hook(receiver, second, "/second", ["credits.granted"])
    _grant(first)
    assert run_webhook_jobs() == 1
    assert receiver.at("/second") == []
    assert receiver.at("/first-alerts") == []
    [got] = receiver.at("/first")
    assert got.verified
    assert got.payload["orgId"] == str(first.pk)
    ledger = client_for(owner_of(first), first).get("/billing/credits/usage", {"kind": "grant"}).json()
    assert got.payload["data"] == ledger["results"][0]  # the ledger entry as the API shows it
    assert got.payload["data"]["amount"] == "5.000000"


def test_a_failing_endpoint_is_retried_on_the_schedule_then_the_event_fails(receiver, clock):
    org = make_org(name="Retried")
    webhook = hook(receiver, org, "/down", ["credits.granted"])
    receiver.answers["/down"] = [Answer(status=503, body=b"down for maintenance")]
    _grant(org)
    assert run_webhook_jobs() == 1
    for attempt, delay in enumerate(RETRY_DELAYS, start=2):
        failed = Delivery.all_orgs.get(attempt=attempt - 1)
        assert (failed.status, failed.response_status, failed.error) == (
            "failed",
            503,
            "HTTP 503: down for maintenance",
        )
        due = Delivery.all_orgs.get(status="pending")
        assert due.attempt == attempt
        assert failed.updated_at + delay - timedelta(seconds=1) < due.due_at <= failed.updated_at + delay
        clock["at"] = due.due_at - timedelta(seconds=1)
        assert run_webhook_jobs() == 0  # not yet
        clock["at"] = due.due_at
        assert run_webhook_jobs() == 1
    assert list(Delivery.all_orgs.order_by("attempt").values_list("attempt", "status")) == [
        (n, "failed") for n in range(1, 7)
    ]
    clock["at"] += timedelta(days=2)
    assert run_webhook_jobs() == 0  # given up
    got = receiver.at("/down")
    assert len(got) == 6
    assert all(item.verified for item in got)
    assert len({item.body for item in got}) == 1  # the same event, the same body, every time
    assert len({item.headers["LeanCore-Signature"] for item in got}) == 6  # each attempt signed at its time
    webhook.refresh_from_db()
    assert webhook.last_status == "failed"
    assert webhook.last_delivery_at == Delivery.all_orgs.get(attempt=6).sent_at


def test_an_endpoint_that_comes_back_gets_the_event_once_more_and_no_further(receiver, clock):
    org = make_org(name="Back")
    webhook = hook(receiver, org, "/back", ["credits.granted"])
    receiver.answers["/back"] = [Answer(status=500), Answer(status=204, body=b"")]
    _grant(org)
    run_webhook_jobs()
    clock["at"] = Delivery.all_orgs.get(status="pending").due_at
    assert run_webhook_jobs() == 1
    assert list(Delivery.all_orgs.order_by("attempt").values_list("attempt", "status", "response_status")) == [
        (1, "failed", 500),
        (2, "delivered", 204),
    ]
    webhook.refresh_from_db()
    assert webhook.last_status == "delivered"
    assert len(receiver.at("/back")) == 2


def test_no_answer_in_time_is_a_failed_attempt(receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    org = make_org(name="Slow")
    hook(receiver, org, "/slow", ["credits.granted"])
    receiver.answers["/slow"] = [Answer(delay=3)]
    _grant(org)
    assert run_webhook_jobs() == 1
    failed = Delivery.all_orgs.get(attempt=1)
    assert (failed.status, failed.response_status, failed.error) == ("failed", None, "No answer within 0.5 seconds.")
    assert Delivery.all_orgs.filter(attempt=2, status="pending").exists()


def test_a_redirect_is_not_followed(receiver):
    org = make_org(name="Redirected")
    hook(receiver, org, "/moved", ["credits.granted"])
    receiver.answers["/moved"] = [Answer(status=307, location=f"{receiver.url}/elsewhere")]
    _grant(org)
    run_webhook_jobs()
    assert Delivery.all_orgs.get(attempt=1).response_status == 307
    assert Delivery.all_orgs.get(attempt=1).status == "failed"
    assert receiver.at("/elsewhere") == []


def test_only_the_start_of_a_large_answer_is_read(receiver):
    org = make_org(name="Chatty")
    hook(receiver, org, "/chatty", ["credits.granted"])
    receiver.answers["/chatty"] = [Answer(status=500, body=b"x" * 5_000_000)]
    _grant(org)
    run_webhook_jobs()
    error = Delivery.all_orgs.get(attempt=1).error
    assert error.startswith("HTTP 500: xxx")
    assert len(error) <= len("HTTP 500: ") + 200


def _named_hook(receiver, org, url: str, path: str, events: list[str]) -> Webhook:
    created = services.create_webhook(context=admin_context(org), url=url + path, events=events)
    receiver.secrets[path] = created.secret
    return created.webhook


def test_the_guard_runs_again_at_send_time_and_the_connection_is_pinned(receiver, settings, monkeypatch):
    """The attack: a name that resolved to a public address when the webhook was saved resolves to a
    private one when the worker sends (DNS rebinding). The attempt fails and nothing reaches it. And an
    allowed name goes only to the address it was checked at, never to a second lookup's."""
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    port = receiver.url.rsplit(":", 1)[1]
    answers = {"rebind.example": ["93.184.216.34"], "pinned.example": ["127.0.0.1"]}
    monkeypatch.setattr(url_guard, "_resolve", lambda host, port: answers[host])
    org = make_org(name="Rebinding")
    _named_hook(receiver, org, f"http://rebind.example:{port}", "/rebound", ["credits.granted"])
    answers["rebind.example"] = ["127.0.0.1"]  # where the receiver is
    _grant(org)
    run_webhook_jobs()
    failed = Delivery.all_orgs.get(attempt=1)
    assert failed.status == "failed"
    assert failed.error.startswith("The URL is not allowed: rebind.example resolves to a private")
    assert receiver.at("/rebound") == []

    settings.MCP_ALLOWED_PRIVATE_URLS = [f"http://pinned.example:{port}"]  # an allowed origin: checked, pinned
    _named_hook(receiver, org, f"http://pinned.example:{port}", "/pinned", ["alert.raised"])
    billing.set_circuit(org=org, actor=None, state="open", reason="pinned")  # an alert
    run_webhook_jobs()
    [got] = receiver.at("/pinned")  # pinned.example resolves nowhere but here: the checked address was used
    assert got.verified
    assert got.headers["Host"] == f"pinned.example:{port}"


def test_the_test_ping_is_signed_with_empty_data_and_tried_once(receiver):
    org = make_org(name="Pinged")
    client = client_for(owner_of(org), org)
    webhook = hook(receiver, org, "/ping", ["task.finished"])
    assert client.post(f"/orgs/{org.pk}/webhooks/{webhook.pk}/test").status_code == 202
    run_webhook_jobs()
    [got] = receiver.at("/ping")
    assert got.verified
    assert (got.payload["type"], got.payload["data"], got.payload["orgId"]) == ("ping", {}, str(org.pk))
    receiver.answers["/ping"] = [Answer(status=500)]
    client.put(f"/orgs/{org.pk}/webhooks/{webhook.pk}", {"enabled": False}, format="json")
    client.post(f"/orgs/{org.pk}/webhooks/{webhook.pk}/test")  # a disabled webhook still takes a ping
    run_webhook_jobs()
    log = client.get(f"/orgs/{org.pk}/webhooks/{webhook.pk}/deliveries").json()
    assert [(row["event"], row["status"], row["responseStatus"]) for row in log["results"]] == [
        ("ping", "failed", 500),
        ("ping", "delivered", 200),
    ]
    assert not Delivery.all_orgs.filter(status="pending").exists()  # a ping is not retried


def test_a_disabled_webhook_is_sent_no_event(receiver):
    org = make_org(name="Disabled")
    webhook = hook(receiver, org, "/off", ["credits.granted"])
    _grant(org)  # queued while enabled
    Webhook.all_orgs.filter(pk=webhook.pk).update(enabled=False)
    _grant(org)  # not even queued
    run_webhook_jobs()
    assert receiver.at("/off") == []
    assert list(Delivery.all_orgs.values_list("status", "error")) == [("failed", "The webhook is disabled.")]


def test_one_org_holds_at_most_half_of_the_delivery_threads(receiver, settings):
    """An org already at its share is put back (behind the others), the others' deliveries go on."""
    settings.WEBHOOK_WORKER_CONCURRENCY = 2  # a share of one
    busy, calm = make_org(name="Busy"), make_org(name="Calm")
    hook(receiver, busy, "/busy", ["credits.granted"])
    hook(receiver, calm, "/calm", ["credits.granted"])
    _grant(busy)
    _grant(calm)
    waiting = Delivery.all_orgs.get(organization=busy)
    assert jobs._admit(busy.pk)  # one of the busy org's attempts is in flight in this process
    try:
        assert async_to_sync(jobs.attempt_delivery)(waiting.pk) == "deferred"
        assert async_to_sync(jobs.attempt_delivery)(Delivery.all_orgs.get(organization=calm).pk) == "delivered"
    finally:
        jobs._leave(busy.pk)
    assert receiver.at("/busy") == []
    assert len(receiver.at("/calm")) == 1
    put_back = DBTaskResult.objects.filter(queue_name=QUEUE, priority=jobs.DEFERRED_PRIORITY).get()
    assert put_back.args_kwargs["args"] == [str(waiting.pk)]
    assert jobs.running() == {}


def test_attempts_that_lost_their_worker_or_their_job_are_recovered(receiver, clock):
    org = make_org(name="Recovered")
    hook(receiver, org, "/lost", ["credits.granted"])
    _grant(org)
    _grant(org)
    begun, never = Delivery.all_orgs.order_by("created_at")
    Delivery.all_orgs.filter(pk=begun.pk).update(sent_at=clock["at"] - timedelta(minutes=10))
    Delivery.all_orgs.filter(pk=never.pk).update(due_at=clock["at"] - timedelta(minutes=20))
    DBTaskResult.objects.filter(queue_name=QUEUE).delete()  # their jobs are gone
    assert jobs.recover_stalled_deliveries() == 2
    begun.refresh_from_db()
    assert (begun.status, begun.error) == ("failed", "The worker stopped during this attempt.")
    assert Delivery.all_orgs.filter(event_id=begun.event_id, attempt=2, status="pending").exists()
    assert run_webhook_jobs() == 1  # the one never begun, sent now (its retry is due later)
    never.refresh_from_db()
    assert never.status == "delivered"
    assert jobs.recover_stalled_deliveries() == 0


def test_the_alert_and_the_events_data_are_the_apis(receiver):
    org = make_org(name="Alerted")
    client = client_for(owner_of(org), org)
    hook(receiver, org, "/alerts", ["alert.raised", "circuit.changed"])
    client.post("/billing/circuit/toggle", {"state": "open", "reason": "check"}, format="json")
    run_webhook_jobs()
    by_type = {item.payload["type"]: item.payload for item in receiver.at("/alerts")}
    assert set(by_type) == {"alert.raised", "circuit.changed"}
    assert by_type["alert.raised"]["data"] == client.get("/billing/alerts").json()["results"][0]
    assert all(item.verified for item in receiver.at("/alerts"))
    assert json.loads(Event.all_orgs.get(type="alert.raised").body) == by_type["alert.raised"]


def test_an_attempts_log_lines_carry_its_orgs_id(receiver, monkeypatch):
    org = make_org(name="Logged")
    hook(receiver, org, "/logged", ["credits.granted"])
    _grant(org)
    seen = []
    post = sending.post

    async def recording(**kwargs):
        seen.append(log_context.fields())
        return await post(**kwargs)

    monkeypatch.setattr(sending, "post", recording)
    before = log_context.fields()
    assert run_webhook_jobs() == 1
    assert seen == [{"orgId": str(org.pk)}]  # nothing of what ran before it here
    assert log_context.fields() == before  # and nothing of it after
