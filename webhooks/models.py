"""An organization's webhooks, the outbox of its events and the log of every delivery attempt."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from orgs.models import OrgScopedModel


class EventType(models.TextChoices):
    """What an organization can subscribe a webhook to (a ``ping`` is sent on request, to one webhook)."""

    ALERT_RAISED = "alert.raised"
    CIRCUIT_CHANGED = "circuit.changed"
    TURN_COMPLETED = "turn.completed"
    TURN_FAILED = "turn.failed"
    TASK_FINISHED = "task.finished"
    CREDITS_GRANTED = "credits.granted"


PING = "ping"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Webhook(OrgScopedModel):
    """An endpoint of the organization's and the events it takes. The signing secret is stored
    encrypted (``core.crypto``): it must be read again to sign, so it cannot be a hash."""

    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)  # EventType values
    enabled = models.BooleanField(default=True)
    secret_encrypted = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # the latest attempt's time and outcome (delivered or failed); none yet: null and ""
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=10, blank=True, choices=DeliveryStatus.choices)

    class Meta(OrgScopedModel.Meta):
        indexes = [models.Index(fields=["organization", "-created_at"], name="webhooks_hook_org_created")]

    def __str__(self) -> str:
        return f"Webhook {str(self.pk)[:8]} ({', '.join(self.events) or 'ping only'})"


class Event(OrgScopedModel):
    """The outbox: one row per event, written in the transaction of its cause, with the exact body
    every attempt sends (the same ``id`` on every retry)."""

    type = models.CharField(max_length=40)
    subject_id = models.UUIDField(null=True, blank=True)
    body = models.TextField()  # JSON: {id, type, createdAt, orgId, data}
    # the trace context of the cause that recorded it (``core.tracing``; empty while tracing is off):
    # every attempt's job continues that trace
    trace_context = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.type} {str(self.pk)[:8]}"


class Delivery(OrgScopedModel):
    """One attempt to deliver one event to one webhook: made when it is due, by the worker."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    due_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)  # when the attempt began: its signature's ``t``
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta(OrgScopedModel.Meta):
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["webhook", "-created_at"], name="webhooks_delivery_hook"),
            # an org's last deliveries (its admin page), however long its log
            models.Index(fields=["organization", "-created_at"], name="webhooks_delivery_org"),
            models.Index(fields=["status", "due_at"], name="webhooks_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"Delivery {str(self.pk)[:8]} (attempt {self.attempt}, {self.status})"
