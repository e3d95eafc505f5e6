from __future__ import annotations

from django.contrib import admin

from chat.models import Artifact, Attachment, ChatSession, Message


class ReadOnlyHistory(admin.ModelAdmin):
    """Chat history is a record: operators read it; it is never edited or moved to another org."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    model = Message
    extra = 0
    fields = ["role", "status", "content", "credits", "error_code", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    show_change_link = True


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyHistory):
    list_display = ["title", "organization", "specialist", "created_by", "message_count", "last_message_at"]
    search_fields = ["title", "organization__name", "specialist__name", "created_by__email"]
    list_select_related = ["organization", "specialist", "created_by"]
    readonly_fields = ["created_at", "updated_at", "last_message_at", "message_count"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(ReadOnlyHistory):
    list_display = ["session", "role", "status", "credits", "error_code", "created_at"]
    list_filter = ["role", "status", "error_code"]
    search_fields = ["content", "session__title"]
    list_select_related = ["session"]
    readonly_fields = ["created_at", "started_at", "completed_at", "reservation_id"]


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyHistory):
    list_display = ["filename", "organization", "content_type", "size", "uploaded_by", "created_at"]
    search_fields = ["filename", "organization__name"]
    list_select_related = ["organization", "uploaded_by"]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    """Artifacts are what specialists saved: operators read them."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    list_display = ["title", "kind", "workspace", "specialist", "created_at"]
    list_filter = ["kind"]
    search_fields = ["title", "content"]
    list_select_related = ["workspace", "specialist"]
