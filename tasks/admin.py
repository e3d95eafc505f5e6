from __future__ import annotations

from django.contrib import admin

from orgs.admin_mixins import OrgOwnedAdmin
from tasks.models import Project, Task


@admin.register(Project)
class ProjectAdmin(OrgOwnedAdmin):
    list_display = ["name", "organization", "status", "workspace", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "organization__name"]
    list_select_related = ["organization", "workspace"]


@admin.register(Task)
class TaskAdmin(OrgOwnedAdmin):
    list_display = ["title", "organization", "status", "priority", "assignee_user", "assignee_specialist", "due_date"]
    list_filter = ["status", "priority"]
    search_fields = ["title", "description", "organization__name"]
    list_select_related = ["organization", "assignee_user", "assignee_specialist"]
