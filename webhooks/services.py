"""Webhook writes, by an org admin through the API (and operators in the admin): each one in the org's
audit trail. The signing secret is made here, shown once (the 201 of the create) and stored encrypted."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.crypto import encrypt_json
from core.db import release_connections
from core.errors import InvalidStateError, ValidationFailed
from core.url_guard import check_url
from orgs.context import OrgContext, require_member, require_role
from orgs.models import AuditEntry, Role
from webhooks import jobs
from webhooks.models import PING, Delivery, DeliveryStatus, EventType, Webhook
from webhooks.outbox import record_event
from webhooks.signing import new_secret

MAX_WEBHOOKS_PER_ORG = 20


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    """A new webhook and its signing secret, which is never shown again."""

    webhook: Webhook
    secret: str


def _audit(*, context: OrgContext, action: str, webhook: Webhook, **details: object) -> None:
    AuditEntry.objects.create(
        actor=context.user,
        organization=context.org,
        action=action,
        object_type=Webhook._meta.label,
        object_id=str(webhook.pk),
        object_repr=str(webhook)[:200],
        details={"events": webhook.events, "enabled": webhook.enabled, **details},
    )


def _allowed(context: OrgContext, url: str) -> None:
    """The outbound guard (a name lookup of up to a few seconds, in the org's share of the lookup
    threads), with no database connection held meanwhile."""
    release_connections()
    check_url(url, org_id=context.org.pk)


def _events(events: list[str]) -> list[str]:
    """The subscribed events, each once, in the contract's order."""
    return [choice for choice in EventType.values if choice in set(events)]


def create_webhook(*, context: OrgContext, url: str, events: list[str]) -> CreatedWebhook:
    require_member(context)
    require_role(context, Role.ADMIN)
    _allowed(context, url)
    secret = new_secret()
    with transaction.atomic():
        if Webhook.objects.for_org(context.org).count() >= MAX_WEBHOOKS_PER_ORG:
            raise ValidationFailed("url", f"An organization has at most {MAX_WEBHOOKS_PER_ORG} webhooks.")
        webhook = Webhook.objects.create(
            organization=context.org,
            url=url,
            events=_events(events),
            secret_encrypted=encrypt_json({"secret": secret}),
            created_by=context.user,
        )
        _audit(context=context, action="webhook.created", webhook=webhook)
    return CreatedWebhook(webhook=webhook, secret=secret)


def update_webhook(
    *,
    context: OrgContext,
    webhook: Webhook,
    url: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
) -> Webhook:
    """Changes what is given; a new URL passes the guard first. The secret stays."""
    require_member(context)
    require_role(context, Role.ADMIN)
    if url is not None and url != webhook.url:
        _allowed(context, url)
    changed = []
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().for_org(context.org).get(pk=webhook.pk)
        asked = {"url": url, "events": None if events is None else _events(events), "enabled": enabled}
        for name, value in asked.items():
            if value is not None and getattr(webhook, name) != value:
                setattr(webhook, name, value)
                changed.append(name)
        if changed:
            webhook.save(update_fields=[*changed, "updated_at"])
            _audit(context=context, action="webhook.changed", webhook=webhook, changed=changed)
    return webhook


def delete_webhook(*, context: OrgContext, webhook: Webhook) -> None:
    """Gone with its delivery log; attempts still waiting are not made."""
    require_member(context)
    require_role(context, Role.ADMIN)
    with transaction.atomic():
        _audit(context=context, action="webhook.deleted", webhook=webhook)
        Webhook.objects.for_org(context.org).filter(pk=webhook.pk).delete()


def send_ping(*, context: OrgContext, webhook: Webhook) -> Delivery:
    """A ``ping`` event (``data`` ``{}``) to this webhook alone, whatever it subscribes to: its
    delivery, pending until the worker makes its one attempt."""
    require_member(context)
    require_role(context, Role.ADMIN)
    with transaction.atomic():
        event = record_event(org_id=context.org.pk, event_type=PING, subject_id=None, data={}, webhook_ids=[webhook.pk])
        return Delivery.objects.get(organization=context.org, event=event, webhook=webhook)


def resend_delivery(*, context: OrgContext, delivery: Delivery) -> Delivery:
    """A re-send of a delivery's event to its webhook (an operator's, from the admin, which writes the
    audit trail with the reason): a new attempt, due now, retried on the schedule while the event has
    attempts left there. Refused (409) while an attempt of that event to that webhook is still pending."""
    require_role(context, Role.ADMIN)
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().for_org(context.org).get(pk=delivery.webhook_id)
        same = Delivery.objects.for_org(context.org).filter(webhook=webhook, event_id=delivery.event_id)
        if same.filter(status=DeliveryStatus.PENDING).exists():
            raise InvalidStateError("An attempt of this event to this webhook is still pending.")
        last = same.aggregate(last=Max("attempt"))["last"] or 0
        resent = Delivery.objects.create(
            organization_id=context.org.pk,
            webhook=webhook,
            event_id=delivery.event_id,
            attempt=last + 1,
            due_at=timezone.now(),
        )
        jobs.schedule(resent)
    return resent
