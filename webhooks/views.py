"""``/orgs/{orgId}/webhooks…``: an org admin's webhooks, their delivery log and a test ping."""

from __future__ import annotations

import uuid

from django.db.models import OuterRef, QuerySet, Subquery
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import RateLimitedError, ServiceUnavailableError
from core.filters import ordered_page
from core.throttles import MCPSyncThrottle
from core.url_guard import UrlNotAllowedError
from core.views import valid_body
from orgs.api import OrgViewSet
from orgs.models import Role
from webhooks import services
from webhooks.models import Delivery, Event, Webhook
from webhooks.serializers import (
    CreatedWebhookSerializer,
    DeliverySerializer,
    WebhookCreateSerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
)

TAGS = ["Operations"]
ACTIONS = ("list", "retrieve", "create", "update", "destroy", "deliveries", "ping")  # every one: admin
SIGNED = (
    "Each delivery is `POST url` with JSON `{id, type, createdAt, orgId, data}` and the header "
    '`LeanCore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the secret>`.'
)


class WebhookWriteThrottle(MCPSyncThrottle):
    """Webhooks created, re-pointed or pinged per organization (``THROTTLE_WEBHOOK_WRITE``): each one
    looks an outside host name up or makes the worker call it. Checked by the view once the org, the
    caller's role and the webhook are known."""

    scope = "webhook_write"


def deliveries_of(deliveries: QuerySet[Delivery], *, org_id: uuid.UUID) -> QuerySet[Delivery]:
    """A webhook's delivery log (``deliveries``: one webhook's, in org ``org_id``), newest first, with
    each event's type (not its body): read for the rows of the page only, so that counting the log
    joins no event."""
    event_type = Event.objects.filter(organization_id=org_id, pk=OuterRef("event_id")).order_by().values("type")
    return deliveries.annotate(event_type=Subquery(event_type[:1])).order_by("-created_at", "-attempt")


@extend_schema_view(
    list=extend_schema(
        tags=TAGS,
        summary="The organization's webhooks (admin), newest first",
        description="Never their secrets. `lastDeliveryAt` and `lastStatus` follow each one's latest attempt.",
    ),
    retrieve=extend_schema(
        tags=TAGS, summary="One webhook (admin); never its secret", description="As in the list; never the secret."
    ),
)
class WebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgViewSet[Webhook]):
    errors = {
        "create": (UrlNotAllowedError, ServiceUnavailableError, RateLimitedError),
        "update": (UrlNotAllowedError, ServiceUnavailableError, RateLimitedError),
        "ping": (RateLimitedError,),
    }
    queryset = Webhook.objects.all()
    serializer_class = WebhookSerializer
    page_serializers = {"deliveries": DeliverySerializer}  # the page a webhook's deliveries action answers
    org_path_kwarg = "org_id"
    required_roles = dict.fromkeys(ACTIONS, Role.ADMIN)

    def scope_queryset(self, queryset: QuerySet[Webhook]) -> QuerySet[Webhook]:
        return queryset.order_by("-created_at")

    @extend_schema(
        tags=TAGS,
        request=WebhookCreateSerializer,
        responses={201: CreatedWebhookSerializer},
        summary="Add a webhook (admin); its signing secret is in this answer only",
        description=(
            "`events` from `alert.raised`, `circuit.changed`, `turn.completed`, `turn.failed`, `task.finished`, "
            "`credits.granted`. A URL that is not http(s), does not resolve, or resolves to a private, loopback, "
            "link-local or metadata address is not allowed (the guard of MCP URLs). The answer's `secret` "
            f"signs every delivery and is never shown again. {SIGNED}"
        ),
    )
    def create(self, request: Request, org_id: uuid.UUID) -> Response:
        body = valid_body(WebhookCreateSerializer, request)
        WebhookWriteThrottle().check(request, self)  # after the org and role checks (``initial``)
        created = services.create_webhook(context=self.org_context, url=body["url"], events=body["events"])
        answer = CreatedWebhookSerializer(created.webhook).data
        answer["secret"] = created.secret
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=TAGS,
        request=WebhookUpdateSerializer,
        responses={200: WebhookSerializer},
        summary="Change a webhook (admin)",
        description=(
            "One or more of `url`, `events`, `enabled`; the others stay, and so does the secret. A new URL passes the "
            "guard again. A disabled webhook is sent nothing but a requested `ping`."
        ),
    )
    def update(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        webhook = self.get_object()
        body = valid_body(WebhookUpdateSerializer, request)
        if "url" in body:
            WebhookWriteThrottle().check(request, self)
        webhook = services.update_webhook(context=self.org_context, webhook=webhook, **body)
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(
        tags=TAGS,
        summary="Remove a webhook (admin)",
        description="It is sent nothing more, and its delivery log goes with it.",
    )
    def destroy(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        services.delete_webhook(context=self.org_context, webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=TAGS,
        responses={200: DeliverySerializer(many=True)},
        summary="A webhook's delivery log (admin), newest first",
        description=(
            "One row per attempt: `pending` until the worker makes it, then `delivered` (a 2xx answer within "
            "10 s) or `failed`. A failed attempt is retried with growing delays (about 1 min, 5 min, 30 min, "
            "2 h, 8 h; a new row each, the same `eventId`), then the event stays `failed` for this webhook."
        ),
    )
    def deliveries(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        paginator = self.paginator  # the paginator's own method: the rows are another model's than the view's
        log = self.of_parent(Delivery.objects.for_org(self.org), parent=Webhook, field="webhook")
        deliveries = ordered_page(request, deliveries_of(log, org_id=self.org.pk), self)
        page = paginator.paginate_queryset(deliveries, request, view=self) if paginator is not None else None
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={202: DeliverySerializer},
        summary="Send a test ping (admin)",
        description=(
            "Queues a `ping` event (`data` `{}`) to this webhook, whatever its `events` and even when disabled, "
            "and answers at once with its pending delivery; the worker makes one attempt (no retries). "
            f"{SIGNED}"
        ),
    )
    def ping(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        webhook = self.get_object()
        WebhookWriteThrottle().check(request, self)
        delivery = services.send_ping(context=self.org_context, webhook=webhook)
        log = Delivery.objects.for_org(self.org).filter(webhook=webhook)
        shown = deliveries_of(log, org_id=self.org.pk).get(pk=delivery.pk)
        return Response(DeliverySerializer(shown).data, status=status.HTTP_202_ACCEPTED)
