from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from orgs.models import OrgScopedModel


class Project(OrgScopedModel):
    class Status(models.TextChoices):
        ACTIVE = "active"
        ARCHIVED = "archived"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="projects"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        "orgs.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )  # the org API key that created it (then ``created_by`` is None)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Task(OrgScopedModel):
    class Status(models.TextChoices):
        TODO = "todo"
        IN_PROGRESS = "in_progress"
        DONE = "done"
        CANCELLED = "cancelled"

    class Priority(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TODO)
    priority = models.CharField(max_length=6, choices=Priority.choices, default=Priority.MEDIUM)
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    assignee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assignee_specialist = models.ForeignKey(
        "specialists.Specialist", null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    due_date = models.DateField(null=True, blank=True)
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    session = models.ForeignKey("chat.ChatSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run_message_id = models.UUIDField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        "orgs.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )  # the org API key that created it (then ``created_by`` is None)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(assignee_user__isnull=True) | Q(assignee_specialist__isnull=True),
                name="task_at_most_one_assignee",
            )
        ]
        indexes = [models.Index(fields=["organization", "status", "due_date"])]

    def __str__(self) -> str:
        return self.title
