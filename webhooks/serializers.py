from __future__ import annotations

from rest_framework import serializers

from core.fields import EmptyAsNullCharField, EmptyAsNullChoiceField
from core.serializers import PlainReadModelSerializer
from webhooks.models import Delivery, DeliveryStatus, EventType, Webhook

LAST_STATUSES = [DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value]


class WebhookSerializer(PlainReadModelSerializer[Webhook]):
    pages_read_as_rows = True
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices))
    last_status = EmptyAsNullChoiceField(
        choices=LAST_STATUSES,
        allow_null=True,
        read_only=True,
        help_text="The latest attempt's outcome (`delivered` or `failed`); null before the first.",
    )
    last_delivery_at = serializers.DateTimeField(
        allow_null=True, read_only=True, help_text="When the latest attempt was made; null before the first."
    )

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "enabled", "created_at", "last_delivery_at", "last_status"]
        read_only_fields = fields


class CreatedWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret (`whsec_…`): shown only in this answer, never again."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


def _events(*, required: bool = True) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        min_length=1,
        max_length=len(EventType.values),
        help_text="The events to send (at least one); a `ping` is sent on request whatever this says.",
        required=required,
    )


class WebhookCreateSerializer(serializers.Serializer[object]):
    url = serializers.URLField(max_length=2000, help_text="http(s); the same guard as an MCP server's URL.")
    events = _events()


class WebhookUpdateSerializer(serializers.Serializer[object]):
    url = serializers.URLField(max_length=2000, required=False)
    events = _events(required=False)
    enabled = serializers.BooleanField(required=False)


class DeliverySerializer(PlainReadModelSerializer[Delivery]):
    pages_read_as_rows = True
    event = serializers.CharField(source="event_type", read_only=True, help_text="The event's type (or `ping`).")
    event_id = serializers.UUIDField(read_only=True, help_text="The event's id: the same on every attempt.")
    response_status = serializers.IntegerField(
        allow_null=True, read_only=True, help_text="The endpoint's HTTP status; null when it gave none."
    )
    error = EmptyAsNullCharField(
        read_only=True, allow_null=True, help_text="Why the attempt failed; null unless it did."
    )
    delivered_at = serializers.DateTimeField(allow_null=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "event_id",
            "attempt",
            "status",
            "response_status",
            "error",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields
