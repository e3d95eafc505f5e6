from __future__ import annotations

import uuid
from typing import Literal, Required, TypedDict

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat.models import Artifact, Attachment, ChatSession, Message
from core.fields import CreditField
from core.json_types import JSONObject
from core.serializers import PlainReadModelSerializer


class SendBody(TypedDict, total=False):
    """A send's validated body (``SendSerializer.validated_data``)."""

    specialist_id: Required[uuid.UUID]
    message: Required[str]
    session_id: uuid.UUID | None
    workspace_id: uuid.UUID | None
    attachment_ids: list[uuid.UUID]
    on_disconnect: Required[Literal["cancel", "continue"]]


ON_DISCONNECT_CONTINUE = "continue"


class SendSerializer(serializers.Serializer[object]):
    specialist_id = serializers.UUIDField()
    message = serializers.CharField(max_length=100_000, trim_whitespace=False)
    session_id = serializers.UUIDField(required=False, allow_null=True)
    workspace_id = serializers.UUIDField(required=False, allow_null=True)
    attachment_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=20)
    on_disconnect = serializers.ChoiceField(
        choices=["cancel", ON_DISCONNECT_CONTINUE],
        default="cancel",
        help_text='The stream only. "cancel": a client that goes away stops the turn (the message fails with '
        '`client_disconnected`). "continue": the turn runs to its end without the client, billed in full; resume '
        "it with GET /api/chat/messages/{messageId}/events.",
    )


class FrameSerializer(SendSerializer):
    """A ``{"type": "message"}`` frame: the send body without the ids the socket already knows."""

    # DRF's way of leaving out an inherited field
    specialist_id = None  # type: ignore[assignment]  # DRF's way of leaving out an inherited field
    session_id = None  # type: ignore[assignment]  # DRF's way of leaving out an inherited field
    workspace_id = None  # type: ignore[assignment]  # DRF's way of leaving out an inherited field
    on_disconnect = None  # type: ignore[assignment]  # a socket's turn runs on whether it stays or not


class ResumeFrameSerializer(serializers.Serializer[object]):
    """A ``{"type": "resume", "messageId", "after"}`` frame: a turn's events after ``after``, then its live ones."""

    message_id = serializers.UUIDField()
    after = serializers.IntegerField(min_value=0, max_value=2**53, default=0)


class SentSerializer(serializers.Serializer[object]):
    session_id = serializers.UUIDField()
    message_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Message.Status.choices)


class AttachmentSerializer(serializers.ModelSerializer[Attachment]):
    text_extracted = serializers.BooleanField(
        read_only=True,
        help_text="Whether the file's text is available to the specialist: false for an image, an empty file, "
        "or text that could not be extracted within the server's time and size bounds.",
    )

    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "created_at", "text_extracted"]


class UploadSerializer(serializers.Serializer[object]):
    file = serializers.FileField()
    session_id = serializers.UUIDField(required=False, allow_null=True)


class ToolCallSerializer(serializers.Serializer[object]):
    id = serializers.CharField()
    name = serializers.CharField()
    connection_id = serializers.UUIDField(allow_null=True)
    arguments = serializers.DictField()
    result = serializers.CharField()
    is_error = serializers.BooleanField()
    duration_ms = serializers.IntegerField()


class UsageSerializer(serializers.Serializer[object]):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    credits = CreditField()


class MessageSerializer(serializers.ModelSerializer[Message]):
    model = serializers.SerializerMethodField(help_text="Assistant messages: the model that answered (null if none).")
    error = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()
    tool_calls = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(many=True, read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "model",
            "content",
            "status",
            "error",
            "tool_calls",
            "attachments",
            "usage",
            "created_at",
            "completed_at",
        ]

    def get_model(self, message: Message) -> str | None:
        return message.model or None

    def get_error(self, message: Message) -> str | None:
        return message.error or None

    @extend_schema_field(ToolCallSerializer(many=True))
    def get_tool_calls(self, message: Message) -> list[JSONObject]:
        return message.tool_calls  # stored in wire shape (camelCase), arguments untouched

    @extend_schema_field(UsageSerializer)
    def get_usage(self, message: Message) -> dict[str, object]:
        return UsageSerializer(
            {"input_tokens": message.input_tokens, "output_tokens": message.output_tokens, "credits": message.credits}
        ).data


class SessionSerializer(PlainReadModelSerializer[ChatSession]):
    pages_read_as_rows = True
    specialist_id = serializers.UUIDField(read_only=True)
    workspace_id = serializers.UUIDField(read_only=True, allow_null=True)
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)
    api_key_id = serializers.UUIDField(
        source="created_by_api_key_id",
        read_only=True,
        allow_null=True,
        help_text="The org API key that started the session (then createdBy is null).",
    )

    class Meta:
        model = ChatSession
        fields = [
            "id",
            "title",
            "specialist_id",
            "workspace_id",
            "created_by",
            "api_key_id",
            "created_at",
            "updated_at",
            "last_message_at",
            "message_count",
        ]


class SessionDetailSerializer(SessionSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "messages"]


class ArtifactSerializer(PlainReadModelSerializer[Artifact]):
    pages_read_as_rows = True
    session_id = serializers.UUIDField(read_only=True, allow_null=True)
    specialist_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = Artifact
        fields = ["id", "title", "kind", "content", "session_id", "specialist_id", "created_at"]
