"""Operators see webhooks and their delivery log in the admin (never a secret, URLs without their
credentials) and re-send a delivery with a reason, in the audit trail."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django_tasks_db.models import DBTaskResult

from orgs.models import AuditEntry
from tests.conftest import make_org, make_user
from tests.webhooks.conftest import admin_context
from webhooks import services
from webhooks.jobs import QUEUE
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db

URL = "https://ops:planted-password@hooks.example.com/in?token=planted-token"


@pytest.fixture
def webhook(org, settings):
    settings.MCP_ALLOW_PRIVATE_NETWORKS = True  # no name lookup for the example host
    created = services.create_webhook(context=admin_context(org), url=URL, events=["alert.raised"])
    services.send_ping(context=admin_context(org), webhook=created.webhook)
    Delivery.all_orgs.update(status="failed", response_status=500, error="HTTP 500: down")
    return created


def _action(client, pks, **data):
    return client.post(
        "/admin/webhooks/delivery/", {"action": "resend", "_selected_action": [str(pk) for pk in pks], **data}
    )


def test_the_pages_show_no_secret_and_no_url_credentials(operator, webhook):
    pages = [
        operator.get("/admin/webhooks/webhook/"),
        operator.get(f"/admin/webhooks/webhook/{webhook.webhook.pk}/change/"),
        operator.get("/admin/webhooks/delivery/"),
        operator.get(f"/admin/webhooks/delivery/{Delivery.all_orgs.get().pk}/change/"),
    ]
    assert [page.status_code for page in pages] == [200, 200, 200, 200]
    for page in pages:
        html = page.content.decode()
        for planted in (webhook.secret, "planted-password", "planted-token", webhook.webhook.secret_encrypted):
            assert planted not in html
    assert "https://hooks.example.com/in?token=***" in pages[0].content.decode()
    assert "HTTP 500: down" in pages[2].content.decode()
    assert "&quot;type&quot;: &quot;ping&quot;" in pages[3].content.decode()  # the body sent
    assert operator.post(f"/admin/webhooks/webhook/{webhook.webhook.pk}/change/", {}).status_code == 403
    assert operator.get(f"/admin/webhooks/delivery/{Delivery.all_orgs.get().pk}/delete/").status_code == 403


def test_a_resend_asks_a_reason_queues_a_new_attempt_and_is_audited(operator, webhook):
    failed = Delivery.all_orgs.get()
    form = _action(operator, [failed.pk])
    assert form.status_code == 200
    assert b"reason" in form.content
    assert Delivery.all_orgs.count() == 1  # nothing yet
    response = _action(operator, [failed.pk], apply="1", reason="Customer fixed their endpoint")
    assert response.status_code == 302
    resent = Delivery.all_orgs.exclude(pk=failed.pk).get()
    assert (resent.event_id, resent.webhook_id, resent.attempt, resent.status) == (
        failed.event_id,
        failed.webhook_id,
        2,
        "pending",
    )
    assert DBTaskResult.objects.filter(queue_name=QUEUE, args_kwargs__args=[str(resent.pk)]).exists()
    audit = AuditEntry.all_orgs.get(action="webhook_delivery_resent")
    assert (audit.actor, audit.reason, audit.object_id) == (
        operator.user,
        "Customer fixed their endpoint",
        str(resent.pk),
    )
    # while that attempt is pending, the event is not sent twice
    _action(operator, [failed.pk], apply="1", reason="Again")
    assert Delivery.all_orgs.count() == 2
    assert AuditEntry.all_orgs.filter(action="webhook_delivery_resent").count() == 1


def test_staff_who_may_only_look_cannot_resend(webhook):
    viewer = make_user(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="webhooks", codename="view_delivery"))
    client = Client()
    client.force_login(viewer)
    assert 'value="resend"' not in client.get("/admin/webhooks/delivery/").content.decode()
    _action(client, [Delivery.all_orgs.get().pk], apply="1", reason="x")
    assert Delivery.all_orgs.count() == 1
    assert not AuditEntry.all_orgs.filter(action="webhook_delivery_resent").exists()


def test_another_orgs_delivery_is_resent_to_its_own_webhook_only(operator, webhook):
    other = make_org(name="Other")
    services.create_webhook(context=admin_context(other), url=URL, events=["alert.raised"])
    _action(operator, [Delivery.all_orgs.get().pk], apply="1", reason="Retry")
    assert set(Delivery.all_orgs.values_list("organization_id", "webhook_id")) == {
        (webhook.webhook.organization_id, webhook.webhook.pk)
    }
