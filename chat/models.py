from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.json_types import JSONObject
from files.models import StoredFile
from orgs.models import AllOrgsManager, OrgScopedModel, OrgScopedQuerySet


class ChatSession(OrgScopedModel):
    title = models.CharField(max_length=200)
    specialist = models.ForeignKey("specialists.Specialist", on_delete=models.PROTECT, related_name="sessions")
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        "orgs.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )  # the org API key that created it (then ``created_by`` is None)
    last_message_at = models.DateTimeField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "created_by", "created_at"])]

    def __str__(self) -> str:
        return self.title

    @property
    def group_name(self) -> str:
        return f"chat-session-{self.pk}"


def attachment_path(instance: Attachment, filename: str) -> str:
    return f"orgs/{instance.organization_id}/attachments/{instance.pk}/{filename}"


class Attachment(StoredFile, OrgScopedModel):
    file = models.FileField(upload_to=attachment_path, max_length=500)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    text = models.TextField(blank=True, help_text="Extracted text given to the specialist.")
    session = models.ForeignKey(ChatSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="uploads")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_by_api_key = models.ForeignKey(
        "orgs.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )  # the org API key that uploaded it (then ``uploaded_by`` is None)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.filename


class MessageQuerySet(OrgScopedQuerySet["Message"]):
    org_field = "session__organization"


MessageAllOrgsManager = AllOrgsManager.from_queryset(MessageQuerySet)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETED)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    finish_reason = models.CharField(max_length=30, blank=True)
    tool_calls: models.JSONField[list[JSONObject], list[JSONObject]] = models.JSONField(default=list, blank=True)
    attachments = models.ManyToManyField(Attachment, blank=True, related_name="messages")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    credits = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    # an assistant message: the model that answered (its last call; a fallback model after a failover)
    model = models.CharField(max_length=100, blank=True)
    reservation_id = models.UUIDField(null=True, blank=True)
    # a queued turn's record of what it was accepted with (chat.snapshot): sender, model and rates,
    # output limit, temperature, instructions, tools; it runs from this, whatever changes meanwhile
    frozen_turn = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # the lease of a running turn: renewed by whatever process runs it; a stale one means it died
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    all_orgs = MessageAllOrgsManager()  # the default manager: the framework's, every org
    objects = MessageQuerySet.as_manager()
    # set by the turn's hand-written reads: whether the message has attachments (not a column)
    has_attachments: bool

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["session", "created_at"]), models.Index(fields=["status", "started_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class Artifact(OrgScopedModel):
    """Something a specialist saved in a workspace with the built-in ``save_artifact`` tool."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="artifacts")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=50, default="document")
    content = models.TextField()
    session = models.ForeignKey(ChatSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    specialist = models.ForeignKey(
        "specialists.Specialist", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title
