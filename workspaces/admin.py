from __future__ import annotations

from django.contrib import admin

from orgs.admin_mixins import OrgOwnedAdmin
from workspaces.models import Workspace, WorkspaceFile


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
