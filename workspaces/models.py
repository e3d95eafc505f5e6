from __future__ import annotations

from django.conf import settings
from django.db import models

from files.models import StoredFile
from orgs.models import OrgScopedModel


class Workspace(OrgScopedModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
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


def workspace_file_path(instance: WorkspaceFile, filename: str) -> str:
    return f"orgs/{instance.organization_id}/workspaces/{instance.workspace_id}/{instance.pk}/{filename}"


class WorkspaceFile(StoredFile, OrgScopedModel):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="files")
    file = models.FileField(upload_to=workspace_file_path, max_length=500)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    text = models.TextField(blank=True, help_text="Extracted text given to specialists in this workspace.")
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
