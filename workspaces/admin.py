from __future__ import annotations

from django.contrib import admin

from orgs.admin_mixins import OrgOwnedAdmin
from workspaces.models import Artifact, Workspace, WorkspaceFile


class WorkspaceFileInline(admin.TabularInline):
    model = WorkspaceFile
    extra = 0
    fields = ["filename", "content_type", "size", "uploaded_by", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False


@admin.register(Workspace)
class WorkspaceAdmin(OrgOwnedAdmin):
    list_display = ["name", "organization", "created_by", "created_at"]
    search_fields = ["name", "organization__name"]
    list_select_related = ["organization", "created_by"]
    inlines = [WorkspaceFileInline]


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
