"""The outbox: how the apps above announce an event of an organization. ``enqueue_event`` is called
inside the transaction of the event's cause; it writes the event (its body, signed and sent as it is
on every attempt) and one delivery per enabled webhook of that org subscribed to it, and enqueues each
delivery's job in the same transaction: rolled back, nothing is ever sent; committed, the worker sends
it (``webhooks.jobs``), at least once. Another org's webhooks never see it.

It costs one hand-written read when no webhook of the org takes the event: the subject's API
representation (``data``, a mapping or a function that makes one) is made only when one does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping

from django.db import connection, transaction
from django.utils import timezone
from djangorestframework_camel_case.render import CamelCaseJSONRenderer
from rest_framework.fields import DateTimeField

from core import db, tracing
from webhooks import jobs
from webhooks.models import Delivery, Event, Webhook

Data = Mapping[str, object] | Callable[[], Mapping[str, object] | None]

_SUBSCRIBERS_SQL = "SELECT {id}, {events} FROM {table} WHERE {org} = %s AND {enabled} = %s"


def _sql() -> str:
    quote = connection.ops.quote_name
    return _SUBSCRIBERS_SQL.format(
        id=quote("id"),
        events=quote("events"),
        table=quote(Webhook._meta.db_table),
        org=quote("organization_id"),
        enabled=quote("enabled"),
    )


def subscribers(*, org_id: uuid.UUID, event_type: str) -> list[uuid.UUID]:
    """The org's enabled webhooks that take ``event_type``: one indexed read, no ORM (it is on every turn)."""
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [db.adapt(org_id), True])
        rows = cursor.fetchall()
    found = []
    for pk, events in rows:
        listed = json.loads(events) if isinstance(events, str | bytes) else events
        if event_type in (listed or []):
            found.append(db.read_uuid(pk))
    return found


def event_body(*, event_id: uuid.UUID, event_type: str, org_id: uuid.UUID, data: Mapping[str, object]) -> str:
    """``{id, type, createdAt, orgId, data}`` as the API renders JSON (camelCase, exact decimals)."""
    payload = {
        "id": str(event_id),
        "type": event_type,
        "created_at": DateTimeField().to_representation(timezone.now()),
        "org_id": str(org_id),
        "data": dict(data),
    }
    rendered: bytes = CamelCaseJSONRenderer().render(payload)
    return rendered.decode()


def record_event(
    *,
    org_id: uuid.UUID,
    event_type: str,
    subject_id: uuid.UUID | None,
    data: Mapping[str, object],
    webhook_ids: list[uuid.UUID],
) -> Event:
    """The event and the first attempt of its delivery to each of ``webhook_ids`` (of the same org),
    each attempt's job enqueued: all in the caller's transaction. While tracing is on, the event keeps
    the current trace context: its attempts' spans continue the cause's trace."""
    event_id = uuid.uuid4()
    body = event_body(event_id=event_id, event_type=event_type, org_id=org_id, data=data)
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        event = Event.objects.create(
            id=event_id,
            organization_id=org_id,
            type=event_type,
            subject_id=subject_id,
            body=body,
            trace_context=tracing.current_context(),
        )
        deliveries = Delivery.objects.bulk_create(
            Delivery(organization_id=org_id, webhook_id=webhook_id, event=event, due_at=now)
            for webhook_id in webhook_ids
        )
        for delivery in deliveries:
            jobs.schedule(delivery)
    return event


def enqueue_event(*, org_id: uuid.UUID, type: str, subject_id: uuid.UUID | None, data: Data) -> Event | None:
    """Announces an event of ``org_id`` (an ``EventType`` value) about ``subject_id``, whose API
    representation is ``data`` (or what ``data()`` returns; None from it: no event after all). Call it
    inside the transaction of the cause. None when no webhook of the org takes it."""
    webhook_ids = subscribers(org_id=org_id, event_type=type)
    if not webhook_ids:
        return None
    shown = data() if callable(data) else data
    if shown is None:
        return None
    return record_event(org_id=org_id, event_type=type, subject_id=subject_id, data=shown, webhook_ids=webhook_ids)
