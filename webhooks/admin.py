"""Webhooks and their delivery log for operators: read-only (never the secret; URLs without userinfo
or query values, which are often credentials), and a re-send of a delivery with a reason, audited."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from orgs.admin_base.actions import form_action
from orgs.admin_base.audit_trail import record
from orgs.admin_base.display import table_html, when_text
from orgs.admin_base.read_only import ReadOnlyAdmin
from orgs.admin_base.service_saves import operator_context
from orgs.models import Organization
from webhooks import services
from webhooks.models import Delivery, Webhook

RESEND_PERMISSION = "webhooks.change_delivery"
LAST_DELIVERIES = 20  # on an organization's page; the rest in the delivery log
DELIVERY_COLUMNS = ("attempt", "status", "response_status", "created_at", "event__type", "webhook__url")


def shown_url(url: str) -> str:
    """A URL without its userinfo and with its query values as ``***``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    query = "&".join(f"{item.split('=', 1)[0]}=***" for item in parts.query.split("&") if item)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin[Webhook]):
    list_display = ["webhook_url", "organization", "events_text", "enabled", "last_delivery_at", "last_status"]
    list_filter = ["enabled", "last_status", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["url", "organization__name"]
    list_select_related = ["organization"]
    fields = readonly_fields = (
        "id",
        "webhook_url",
        "organization",
        "events_text",
        "enabled",
        "created_by",
        "created_at",
        "last_delivery_at",
        "last_status",
        "delivery_log",
    )  # the secret is not among them, ever

    @admin.display(description="URL")
    def webhook_url(self, obj: Webhook) -> str:
        return shown_url(obj.url)

    @admin.display(description="Events")
    def events_text(self, obj: Webhook) -> str:
        return ", ".join(obj.events) or "(ping only)"

    @admin.display(description="Deliveries")
    def delivery_log(self, obj: Webhook) -> str:
        url = reverse("admin:webhooks_delivery_changelist") + f"?webhook__id__exact={obj.pk}"
        return format_html('<a href="{}">The delivery log</a>', url)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin[Delivery]):
    list_display = [
        "created_at",
        "organization",
        "event_type",
        "attempt",
        "status",
        "response_status",
        "error_short",
        "sent_at",
        "delivered_at",
    ]
    list_filter = ["status", "event__type", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=event__id", "webhook__url", "organization__name"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "id",
        "organization",
        "webhook",
        "event_type",
        "event_id",
        "attempt",
        "status",
        "due_at",
        "sent_at",
        "response_status",
        "error",
        "delivered_at",
        "body",
    )
    actions = ["resend"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).select_related("organization", "webhook", "event")

    def has_resend_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return request.user.has_perm(RESEND_PERMISSION)

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description="Error")
    def error_short(self, obj: Delivery) -> str:
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error or "-"

    @admin.display(description="Body sent")
    def body(self, obj: Delivery) -> str:
        try:
            text = json.dumps(json.loads(obj.event.body), indent=2, ensure_ascii=False)
        except ValueError:
            text = obj.event.body
        return format_html("<pre>{}</pre>", text)

    @admin.action(description="Re-send the selected deliveries' events…", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> HttpResponse:
        return form_action(
            self,
            request,
            queryset.select_related("organization", "event"),
            title="Re-send webhook deliveries",
            apply=_resend,
            label=lambda d: f"{d.event.type} {d.event_id} to webhook {str(d.webhook_id)[:8]} (attempt {d.attempt})",
        )


def _resend(delivery: Delivery, data: Mapping[str, object], request: HttpRequest) -> None:
    resent = services.resend_delivery(context=operator_context(delivery.organization), delivery=delivery)
    record(
        request,
        action="webhook_delivery_resent",
        obj=resent,
        org=delivery.organization,
        reason=str(data["reason"]),
        details={"event": str(delivery.event_id), "webhook": str(delivery.webhook_id), "attempt": resent.attempt},
        log_on=delivery,
    )
    messages.info(request, f"Attempt {resent.attempt} of {delivery.event.type} is queued.")


class OrganizationWebhooks:
    """An organization's webhooks and its last deliveries, for its admin page (a page drawn above the
    webhooks' floor adds ``WEBHOOK_FIELDS``): one query each, never a secret, URLs as ``shown_url``."""

    WEBHOOK_FIELDS = ("webhooks_display", "deliveries_display")

    @admin.display(description="Webhooks")
    def webhooks_display(self, obj: Organization) -> str:
        if obj.pk is None:
            return "-"
        hooks = Webhook.objects.for_org(obj).only("url", "events", "enabled", "last_delivery_at", "last_status")
        rows = [
            (
                format_html(
                    '<a href="{}">{}</a>', reverse("admin:webhooks_webhook_change", args=[hook.pk]), shown_url(hook.url)
                ),
                ", ".join(hook.events) or "(ping only)",
                "active" if hook.enabled else "disabled",
                hook.last_status or "-",
                when_text(hook.last_delivery_at),
            )
            for hook in hooks.order_by("-created_at")
        ]
        headers = ["URL", "Events", "State", "Last status", "Last delivery"]
        return table_html(headers, rows, empty="No webhooks.")

    @admin.display(description="Last deliveries")
    def deliveries_display(self, obj: Organization) -> str:
        if obj.pk is None:
            return "-"
        deliveries = (
            Delivery.objects.for_org(obj)
            .select_related("event", "webhook")
            .only(*DELIVERY_COLUMNS)
            .order_by("-created_at")[:LAST_DELIVERIES]
        )
        rows = [
            (
                format_html(
                    '<a href="{}">{}</a>', reverse("admin:webhooks_delivery_change", args=[d.pk]), d.event.type
                ),
                shown_url(d.webhook.url),
                d.status,
                d.attempt,
                d.response_status or "-",
                when_text(d.created_at),
            )
            for d in deliveries
        ]
        headers = ["Event", "Endpoint", "Status", "Attempt", "Response", "Time"]
        log = reverse("admin:webhooks_delivery_changelist") + f"?organization__id__exact={obj.pk}"
        table = table_html(headers, rows, empty="No deliveries yet.")
        return format_html('{}<p><a href="{}">Its delivery log (re-send a delivery from there)</a></p>', table, log)
