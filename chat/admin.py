from __future__ import annotations

import json

from django.contrib import admin
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from chat.models import Artifact, Attachment, ChatSession, Message
from orgs.admin_base.audited import AuditedAdmin
from orgs.admin_base.display import credits_text


class ReadOnlyHistory[M: Model](admin.ModelAdmin[M]):
    """Chat history is a record: operators read it; it is never edited, deleted or moved to another org."""

    def has_add_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False


def _pretty(value: object) -> str:
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _tool_calls(message: Message) -> SafeString:
    calls = message.tool_calls if isinstance(message.tool_calls, list) else []
    rows = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")  # an older record's OpenAI shape
        function = function if isinstance(function, dict) else {}
        name = call.get("name") or function.get("name") or "tool"
        arguments = call.get("arguments", function.get("arguments", {}))
        result = call.get("result", call.get("output", ""))
        rows.append((name, _pretty(arguments), _pretty(result) if result != "" else "-"))
    return format_html_join(
        "",
        '<div class="tool-call"><strong>{}</strong><pre>arguments: {}</pre><pre>result: {}</pre></div>',
        rows,
    )


def transcript_html(session: ChatSession) -> SafeString | str:
    """The session as it was: every turn with its role, text, tool calls (arguments and results) and usage."""
    turns = []
    for message in session.messages.order_by("created_at"):
        usage = (
            f"{message.input_tokens} in / {message.output_tokens} out tokens, {credits_text(message.credits)}"
            if message.role == Message.Role.ASSISTANT
            else ""
        )
        error = f" — {message.error_code or 'error'}: {message.error}" if message.error or message.error_code else ""
        turns.append(
            (
                message.role,
                message.role,
                f"{message.created_at:%Y-%m-%d %H:%M:%S}",
                message.status,
                error,
                usage,
                message.content,
                _tool_calls(message),
            )
        )
    if not turns:
        return "No messages."
    body = format_html_join(
        "",
        '<div class="turn turn-{}" style="border-top:1px solid #ddd;padding:6px 0">'
        "<p><strong>{}</strong> · {} · {}{} <em>{}</em></p>"
        '<div style="white-space:pre-wrap">{}</div>{}</div>',
        turns,
    )
    return format_html('<div class="transcript">{}</div>', body)


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyHistory[ChatSession]):
    list_display = ["title", "organization", "specialist", "created_by", "message_count", "last_message_at"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter), "last_message_at"]
    search_fields = ["title", "organization__name", "specialist__name", "created_by__email"]
    list_select_related = ["organization", "specialist", "created_by"]
    fields = readonly_fields = (
        "title",
        "organization",
        "specialist",
        "workspace",
        "created_by",
        "created_at",
        "last_message_at",
        "message_count",
        "transcript",
    )

    @admin.display(description="Transcript")
    def transcript(self, obj: ChatSession) -> SafeString | str:
        return transcript_html(obj)


@admin.register(Message)
class MessageAdmin(ReadOnlyHistory[Message]):
    list_display = ["session", "organization", "role", "status", "credits_display", "error_code", "created_at"]
    list_filter = ["role", "status", "error_code"]
    search_fields = ["content", "session__title"]
    list_select_related = ["session", "session__organization"]
    readonly_fields = ["created_at", "started_at", "completed_at", "reservation_id"]

    @admin.display(description="Organization", ordering="session__organization__name")
    def organization(self, obj: Message) -> str:
        return obj.session.organization.name

    @admin.display(description="Credits", ordering="credits")
    def credits_display(self, obj: Message) -> str:
        return credits_text(obj.credits)


@admin.register(Attachment)
class AttachmentAdmin(AuditedAdmin[Attachment], ReadOnlyHistory[Attachment]):
    """Read-only, but an upload may be removed (with a reason, in the audit trail)."""

    list_display = ["filename", "organization", "content_type", "size", "uploaded_by", "created_at"]
    search_fields = ["filename", "organization__name"]
    list_select_related = ["organization", "uploaded_by"]

    def has_delete_permission(self, request: HttpRequest, obj: Attachment | None = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)  # an upload may be removed

    def service_delete(self, request: HttpRequest, obj: Attachment) -> None:
        """The row, then (once that is committed) its stored file: the quota counts rows."""
        stored_file = obj.file
        obj.delete()
        if stored_file:
            transaction.on_commit(lambda: stored_file.delete(save=False))


@admin.register(Artifact)
class ArtifactAdmin(AuditedAdmin[Artifact]):
    """Artifacts are what specialists saved: operators read them (a removal is audited)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Artifact | None = None) -> bool:
        return False

    list_display = ["title", "kind", "workspace", "specialist", "created_at"]
    list_filter = ["kind"]
    search_fields = ["title", "content"]
    list_select_related = ["workspace", "specialist"]
