"""``/orgs/{orgId}/webhooks…`` through the API: an admin's, the secret shown once, the URL guard,
another org's webhooks out of reach, the delivery log and the test ping (queued, not sent by the request)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from core.crypto import decrypt_json
from orgs.models import AuditEntry, Role
from tests.conftest import add_member, assert_problem, client_for, make_org, owner_of
from webhooks.jobs import QUEUE, purge_old_events
from webhooks.models import Delivery, Event, Webhook

pytestmark = pytest.mark.django_db

HOOK_URL = "http://127.0.0.1:9/hooks/leancore"  # nothing listens there: a leaked attempt fails at once


def _path(org, webhook_id=None, tail: str = "") -> str:
    return f"/orgs/{org.pk}/webhooks" + (f"/{webhook_id}" if webhook_id else "") + tail


@pytest.fixture
def loopback(settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def admin(org):
    return client_for(add_member(org, role=Role.ADMIN), org)


def _create(client, org, **body):
    return client.post(_path(org), {"url": HOOK_URL, "events": ["alert.raised"], **body}, format="json")


def test_the_secret_is_shown_once_stored_encrypted_and_never_again(org, admin, loopback):
    response = _create(admin, org, events=["turn.failed", "alert.raised", "turn.failed"])
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body.pop("secret")
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert body == {
        "id": body["id"],
        "url": HOOK_URL,
        "events": ["alert.raised", "turn.failed"],  # each once, in the contract's order
        "enabled": True,
        "createdAt": body["createdAt"],
        "lastDeliveryAt": None,
        "lastStatus": None,
    }
    stored = Webhook.all_orgs.get(pk=body["id"])
    assert secret not in str(Webhook.all_orgs.filter(pk=stored.pk).values().get())  # encrypted at rest
    assert decrypt_json(stored.secret_encrypted) == {"secret": secret}
    answers = [
        admin.get(_path(org)),
        admin.get(_path(org, body["id"])),
        admin.put(_path(org, body["id"]), {"events": ["circuit.changed"]}, format="json"),
        admin.post(_path(org, body["id"], "/test")),
        admin.get(_path(org, body["id"], "/deliveries")),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 202, 200]
    for answer in answers:
        assert secret not in answer.content.decode()
        assert "secret" not in answer.content.decode().lower()
    assert AuditEntry.all_orgs.filter(organization=org, action="webhook.created", object_id=body["id"]).exists()
    assert secret not in str(list(AuditEntry.all_orgs.values()))


def test_events_are_from_the_contracts_list(org, admin, loopback):
    body = assert_problem(_create(admin, org, events=["alert.raised", "invoice.paid"]), 400, "validation_error")
    assert list(body["errors"]) == ["events"]
    assert "item 1" in body["errors"]["events"][0]
    assert_problem(_create(admin, org, events=[]), 400, "validation_error")
    assert_problem(admin.post(_path(org), {"url": HOOK_URL}, format="json"), 400, "validation_error")
    assert not Webhook.all_orgs.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fec0::1]/hook",  # IPv6 site-local, which Python's is_private does not count
        "http://10.1.2.3/hook",
        "http://example.com:99999/hook",  # a port out of range
        "http://no-such-host.invalid/hook",
        "ftp://example.com/hook",
    ],
)
def test_the_url_guard_of_mcp_urls_refuses_private_and_unresolvable_urls(org, admin, url, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    body = assert_problem(_create(admin, org, url=url), 400, "url_not_allowed")
    assert "url" in body["errors"]
    assert not Webhook.all_orgs.exists()


def test_a_new_url_passes_the_guard_again_and_a_refused_one_changes_nothing(org, admin, settings, loopback):
    webhook_id = _create(admin, org).json()["id"]
    settings.MCP_ALLOW_PRIVATE_NETWORKS = False
    moved = admin.put(_path(org, webhook_id), {"url": "http://169.254.169.254/x", "enabled": False}, format="json")
    assert_problem(moved, 400, "url_not_allowed")
    assert_problem(
        admin.put(_path(org, webhook_id), {"url": "http://example.com:70000/x"}, format="json"), 400, "url_not_allowed"
    )
    webhook = Webhook.all_orgs.get(pk=webhook_id)
    assert (webhook.url, webhook.enabled) == (HOOK_URL, True)
    changed = admin.put(_path(org, webhook_id), {"enabled": False, "events": ["task.finished"]}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["events"]) == (False, ["task.finished"])


def test_only_admins_manage_webhooks(org, loopback):
    member = client_for(add_member(org), org)
    webhook_id = _create(client_for(owner_of(org), org), org).json()["id"]
    assert_problem(member.get(_path(org)), 403, "permission_denied")
    assert_problem(member.get(_path(org, webhook_id)), 403, "permission_denied")
    assert_problem(_create(member, org), 403, "permission_denied")
    assert_problem(member.post(_path(org, webhook_id, "/test")), 403, "permission_denied")
    assert_problem(member.delete(_path(org, webhook_id)), 403, "permission_denied")
    assert Webhook.all_orgs.filter(pk=webhook_id).exists()


def test_another_orgs_admin_finds_nothing(org, loopback):
    """The attack: an admin of another org names this org's webhook, in its org's path or in their own."""
    webhook_id = _create(client_for(owner_of(org), org), org).json()["id"]
    other = make_org(name="Other")
    intruder = client_for(owner_of(other), other)
    for path in (_path(org), _path(org, webhook_id), _path(other, webhook_id)):
        assert_problem(intruder.get(path), 404, "not_found")
    for tail in ("", "/deliveries"):
        assert_problem(intruder.get(_path(other, webhook_id, tail)), 404, "not_found")
        assert_problem(intruder.get(_path(org, webhook_id, tail)), 404, "not_found")
    assert_problem(intruder.post(_path(other, webhook_id, "/test")), 404, "not_found")
    assert_problem(intruder.put(_path(other, webhook_id), {"enabled": False}, format="json"), 404, "not_found")
    assert_problem(intruder.delete(_path(other, webhook_id)), 404, "not_found")
    assert_problem(_create(intruder, org), 404, "not_found")
    assert Webhook.all_orgs.get(pk=webhook_id).enabled
    assert not Delivery.all_orgs.exists()
    assert intruder.get(_path(other)).json()["count"] == 0


def test_the_test_ping_is_queued_not_sent_by_the_request(org, admin, loopback):
    webhook_id = _create(admin, org, events=["credits.granted"]).json()["id"]
    response = admin.post(_path(org, webhook_id, "/test"))
    assert response.status_code == 202
    delivery = response.json()
    assert {key: delivery[key] for key in ("event", "attempt", "status", "responseStatus", "error")} == {
        "event": "ping",
        "attempt": 1,
        "status": "pending",
        "responseStatus": None,
        "error": None,
    }
    event = Event.all_orgs.get(pk=delivery["eventId"])
    assert event.type == "ping"
    job = DBTaskResult.objects.get(queue_name=QUEUE)
    assert job.args_kwargs["args"] == [delivery["id"]]
    listed = admin.get(_path(org, webhook_id, "/deliveries")).json()
    assert listed["count"] == 1
    assert listed["results"][0] == delivery


def test_deleting_a_webhook_takes_its_log_and_it_is_sent_nothing_more(org, admin, loopback):
    webhook_id = _create(admin, org).json()["id"]
    admin.post(_path(org, webhook_id, "/test"))
    assert admin.delete(_path(org, webhook_id)).status_code == 204
    assert_problem(admin.get(_path(org, webhook_id)), 404, "not_found")
    assert not Delivery.all_orgs.exists()
    assert AuditEntry.all_orgs.filter(organization=org, action="webhook.deleted").count() == 1


def test_pings_and_url_changes_are_throttled_per_org(org, admin, settings, loopback):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "webhook_write": "3/min"}
    webhook_id = _create(admin, org).json()["id"]  # 1
    assert admin.post(_path(org, webhook_id, "/test")).status_code == 202  # 2
    assert admin.post(_path(org, webhook_id, "/test")).status_code == 202  # 3
    refused = admin.post(_path(org, webhook_id, "/test"))
    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) >= 1
    assert admin.put(_path(org, webhook_id), {"enabled": False}, format="json").status_code == 200  # no lookup


def test_the_lists_are_paginated_newest_first_in_bounded_queries(
    org, admin, loopback, settings, django_assert_max_num_queries
):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "webhook_write": "1000/min"}
    ids = [_create(admin, org).json()["id"] for _ in range(3)]
    for _ in range(25):
        admin.post(_path(org, ids[-1], "/test"))
    with django_assert_max_num_queries(8):
        listed = admin.get(_path(org), {"pageSize": 2}).json()
    assert (listed["count"], [item["id"] for item in listed["results"]]) == (3, ids[::-1][:2])
    assert listed["next"]
    with django_assert_max_num_queries(8):
        page = admin.get(_path(org, ids[-1], "/deliveries")).json()
    assert page["count"] == 25
    assert len(page["results"]) == 20
    assert all(item["event"] == "ping" for item in page["results"])


def test_a_new_field_key_takes_the_signing_secrets_over_too(org, admin, loopback, settings):
    secret = _create(admin, org).json()["secret"]
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = f"{new},{settings.FIELD_ENCRYPTION_KEY}"
    call_command("rotate_field_key", stdout=StringIO())
    stored = Webhook.all_orgs.get().secret_encrypted.encode()
    assert json.loads(Fernet(new.encode()).decrypt(stored)) == {"secret": secret}  # the new key alone reads it


def test_old_events_go_with_their_log_unless_an_attempt_is_pending(org, admin, loopback, clock):
    webhook_id = _create(admin, org).json()["id"]
    done = admin.post(_path(org, webhook_id, "/test")).json()
    waiting = admin.post(_path(org, webhook_id, "/test")).json()
    Delivery.all_orgs.filter(pk=done["id"]).update(status="delivered")
    clock["at"] += timedelta(days=29)
    assert purge_old_events() == 0  # kept WEBHOOK_RETENTION_DAYS (30)
    clock["at"] += timedelta(days=2)
    assert purge_old_events() == 1
    assert list(Event.all_orgs.values_list("pk", flat=True)) == [uuid.UUID(waiting["eventId"])]  # still pending
    assert list(Delivery.all_orgs.values_list("pk", flat=True)) == [uuid.UUID(waiting["id"])]
