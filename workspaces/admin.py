from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from orgs.admin_base.org_owned import OrgOwnedAdmin
from orgs.admin_base.service_saves import changed_values, operator_context, stored
from workspaces import services
from workspaces.models import Workspace, WorkspaceFile


class WorkspaceFileInline(admin.TabularInline[WorkspaceFile, Workspace]):
    model = WorkspaceFile
    extra = 0
    fields = readonly_fields = ("filename", "content_type", "size", "uploaded_by", "created_at")
    can_delete = False


@admin.register(Workspace)
class WorkspaceAdmin(OrgOwnedAdmin[Workspace]):
    list_display = ["name", "organization", "created_by", "created_at"]
    search_fields = ["name", "organization__name"]
    list_select_related = ["organization", "created_by"]
    inlines = [WorkspaceFileInline]

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Workspace], change: bool) -> Workspace:
        data = form.cleaned_data
        if change:
            workspace = stored(form)
            return services.update_workspace(
                context=operator_context(workspace.organization),
                workspace=workspace,
                data=changed_values(form, ("name", "description")),  # type: ignore[arg-type]  # the form's cleaned values: the service's fields
            )
        return services.create_workspace(
            org=data["organization"],
            created_by=data["created_by"],
            name=data["name"],
            description=data["description"],
        )

    def service_delete(self, request: HttpRequest, obj: Workspace) -> None:
        """Its files leave storage too, as through the API."""
        services.delete_workspace(context=operator_context(obj.organization), workspace=obj)
