"""The delivery worker. Each attempt is one job of the ``webhooks`` queue (Django's Tasks API with
django-tasks-db), enqueued in the transaction that writes its delivery row: it can run only once that
commits, and a rolled-back cause sends nothing. The worker serves this queue on threads of its own
(WEBHOOK_WORKER_CONCURRENCY per process, ``leancore.worker``), never on the threads that run turns,
so no endpoint slows a turn; a request only writes rows.

An attempt that fails is retried about 1 min, 5 min, 30 min, 2 h and 8 h later (a new delivery row
each, the same event and body), then it stays ``failed``; a ``ping`` is tried once. One organization
never holds more than half of a process's delivery threads (at least one): a job of an org already at
its share is put back for a moment, so one org's slow or dead endpoint (each attempt up to
WEBHOOK_TIMEOUT_SECONDS) leaves every other org's deliveries threads to run on."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.tasks import task
from django.utils import timezone

from core import log_context, tracing
from core.crypto import decrypt_json
from core.db import in_thread
from webhooks import sending
from webhooks.models import PING, Delivery, DeliveryStatus, Event, Webhook
from webhooks.signing import signature

logger = logging.getLogger(__name__)

QUEUE = "webhooks"
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=8),
)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)
DEFER_SECONDS = 1.0  # how long a job over its org's share waits before it is tried again
DEFERRED_PRIORITY = -1  # after the jobs of the same moment that were not put back
STALLED_AFTER = timedelta(minutes=5)  # an attempt begun this long ago (or 4 timeouts) and still pending lost its worker
LOST_AFTER = timedelta(minutes=15)  # an attempt due this long ago and never begun lost its job

_lock = threading.Lock()
_running: Counter[uuid.UUID] = Counter()  # this process's attempts in flight, per org


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt about to be made: what to send where, signed with the time it began."""

    delivery_id: uuid.UUID
    org_id: uuid.UUID
    url: str
    body: bytes
    signature: str


def schedule(delivery: Delivery, *, at: datetime | None = None) -> None:
    """Enqueues the job of one attempt, in the caller's transaction: now, or ``at``; its span in the
    trace of the event's cause (``Event.trace_context``), whichever attempt it is."""
    job = deliver_webhook.using(run_after=at) if at is not None else deliver_webhook
    job.enqueue(str(delivery.pk), **tracing.job_context(delivery.event.trace_context))


def share() -> int:
    """The delivery threads one org may hold in a process: half of them, at least one."""
    return max(1, settings.WEBHOOK_WORKER_CONCURRENCY // 2)


def _admit(org_id: uuid.UUID) -> bool:
    with _lock:
        if _running[org_id] >= share():
            return False
        _running[org_id] += 1
        return True


def _leave(org_id: uuid.UUID) -> None:
    with _lock:
        _running[org_id] -= 1
        if _running[org_id] <= 0:
            del _running[org_id]


def running() -> dict[uuid.UUID, int]:
    """This process's attempts in flight per org (for tests and diagnostics)."""
    with _lock:
        return dict(_running)


def org_of(*, delivery_id: uuid.UUID) -> uuid.UUID | None:
    """The org of a delivery still waiting for its attempt (None: nothing to do)."""
    return (
        Delivery.objects.across_orgs("a job's own delivery, by the id it carries")
        .filter(pk=delivery_id, status=DeliveryStatus.PENDING, sent_at__isnull=True)
        .values_list("organization_id", flat=True)
        .first()
    )


def put_back(*, delivery_id: uuid.UUID, trace_context: dict[str, str] | None = None) -> None:
    """The job of an org over its share, back in the queue after the others (in the same trace)."""
    later = timezone.now() + timedelta(seconds=DEFER_SECONDS)
    carried = tracing.job_context(trace_context or {})
    deliver_webhook.using(run_after=later, priority=DEFERRED_PRIORITY).enqueue(str(delivery_id), **carried)


@transaction.atomic
def begin_attempt(*, delivery_id: uuid.UUID) -> Attempt | None:
    """Marks a pending delivery as begun (``sent_at``: its signature's time) and returns what to send;
    None when there is nothing to send: already begun or ended (a repeated job), or its webhook is
    disabled (then it fails, for a subscribed event; a ping is sent all the same)."""
    delivery = (
        Delivery.objects.across_orgs("a job's own delivery, by the id it carries")
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("webhook", "event")
        .filter(pk=delivery_id, status=DeliveryStatus.PENDING, sent_at__isnull=True)
        .first()
    )
    if delivery is None:
        return None
    webhook = delivery.webhook
    if not webhook.enabled and delivery.event.type != PING:
        delivery.status, delivery.error = DeliveryStatus.FAILED, "The webhook is disabled."
        delivery.save(update_fields=["status", "error", "updated_at"])
        return None
    delivery.sent_at = timezone.now()
    delivery.save(update_fields=["sent_at", "updated_at"])
    body = delivery.event.body.encode()
    secret = str(decrypt_json(webhook.secret_encrypted)["secret"])
    signed = signature(secret=secret, timestamp=int(delivery.sent_at.timestamp()), body=body)
    return Attempt(delivery.pk, delivery.organization_id, webhook.url, body, signed)


def _retry(delivery: Delivery, now: datetime) -> Delivery | None:
    """The next attempt of a failed one, when the schedule has one left (never for a ping)."""
    if delivery.attempt >= MAX_ATTEMPTS or delivery.event.type == PING:
        return None
    due = now + RETRY_DELAYS[delivery.attempt - 1]
    retry = Delivery.objects.create(
        organization_id=delivery.organization_id,
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        attempt=delivery.attempt + 1,
        due_at=due,
    )
    schedule(retry, at=due)
    return retry


@transaction.atomic
def record_attempt(*, delivery_id: uuid.UUID, outcome: sending.Outcome) -> Delivery | None:
    """Records what an attempt got, on its delivery row and as its webhook's latest attempt (unless a
    later attempt was recorded first), and schedules the next attempt of a failed one."""
    delivery = (
        Delivery.objects.across_orgs("a job's own delivery, by the id it carries")
        .select_for_update(of=("self",))
        .select_related("event")
        .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .first()
    )
    if delivery is None:  # recorded meanwhile (maintenance took it for lost)
        return None
    now = timezone.now()
    delivery.response_status = outcome.response_status
    delivery.error = outcome.error[:500]
    if outcome.delivered:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
    else:
        delivery.status = DeliveryStatus.FAILED
    delivery.save(update_fields=["status", "response_status", "error", "delivered_at", "updated_at"])
    began = delivery.sent_at or now
    Webhook.objects.for_org(delivery.organization_id).filter(pk=delivery.webhook_id).filter(
        Q(last_delivery_at__isnull=True) | Q(last_delivery_at__lte=began)
    ).update(last_delivery_at=began, last_status=delivery.status)
    if not outcome.delivered:
        _retry(delivery, now)
    return delivery


async def attempt_delivery(delivery_id: uuid.UUID, *, trace_context: dict[str, str] | None = None) -> str:
    """One attempt of one delivery: begun and recorded in a transaction each, the HTTP call between
    them holding no database connection. Returns what happened (the job's result)."""
    org_id = await in_thread(org_of)(delivery_id=delivery_id)
    if org_id is None:
        return "skipped"
    log_context.bind(org_id=org_id)
    if not _admit(org_id):
        await in_thread(put_back)(delivery_id=delivery_id, trace_context=trace_context)
        return "deferred"
    try:
        attempt = await in_thread(begin_attempt)(delivery_id=delivery_id)
        if attempt is None:
            return "skipped"
        outcome = await sending.post(
            url=attempt.url, body=attempt.body, signature=attempt.signature, org_id=attempt.org_id
        )
        await in_thread(record_attempt)(delivery_id=delivery_id, outcome=outcome)
    finally:
        _leave(org_id)
    if outcome.delivered:
        return DeliveryStatus.DELIVERED
    logger.info("Webhook delivery %s failed: %s", delivery_id, outcome.error)
    return DeliveryStatus.FAILED


@task(queue_name=QUEUE)
async def deliver_webhook(delivery_id: str, trace_context: dict[str, str] | None = None) -> str:
    """The job of one delivery attempt; its argument is the delivery's id as text (a job's are JSON).
    Its log lines carry its org's id, and only its own. ``trace_context`` (the event's) is read by
    the worker: the job's span continues the trace of the event's cause."""
    with log_context.scope():
        return await attempt_delivery(uuid.UUID(delivery_id), trace_context=trace_context)


def recover_stalled_deliveries() -> int:
    """Maintenance: an attempt begun more than STALLED_AFTER ago and still pending lost its worker
    (the endpoint may have had it: at least once) and is recorded failed, retried on the schedule; an
    attempt due more than LOST_AFTER ago and never begun lost its job, and gets one again."""
    now = timezone.now()
    stall = max(STALLED_AFTER, timedelta(seconds=4 * settings.WEBHOOK_TIMEOUT_SECONDS))
    every_org = Delivery.objects.across_orgs("maintenance: every org's deliveries")
    stalled = every_org.filter(status=DeliveryStatus.PENDING, sent_at__lt=now - stall)
    recovered = 0
    for delivery_id in list(stalled.values_list("pk", flat=True)[:500]):
        lost = sending.Outcome(None, "The worker stopped during this attempt.")
        recovered += record_attempt(delivery_id=delivery_id, outcome=lost) is not None
    waiting = (
        every_org.filter(status=DeliveryStatus.PENDING, sent_at__isnull=True, due_at__lt=now - LOST_AFTER)
        .select_related("event")  # its trace context, for its job
        .defer("event__body")
        .order_by("due_at")
    )
    for delivery in list(waiting[:500]):
        with transaction.atomic():  # due again now: asked once per LOST_AFTER, however long the queue
            Delivery.objects.for_org(delivery.organization_id).filter(pk=delivery.pk).update(due_at=now, updated_at=now)
            schedule(delivery)
        recovered += 1
    return recovered


def purge_old_events() -> int:
    """Maintenance: events older than WEBHOOK_RETENTION_DAYS go, with their delivery log, once none of
    their attempts is pending (at most a thousand a run). Returns how many went."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    pending = Delivery.objects.filter(event=OuterRef("pk"), status=DeliveryStatus.PENDING)
    every_org = Event.objects.across_orgs("maintenance: every org's old events")
    old = every_org.filter(created_at__lt=cutoff).exclude(Exists(pending)).order_by("created_at")
    ids = list(old.values_list("pk", flat=True)[:1000])
    every_org.filter(pk__in=ids).delete()
    return len(ids)
