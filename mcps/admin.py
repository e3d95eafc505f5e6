from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse

from core.errors import DomainError
from mcps import services
from mcps.masking import masked_url
from mcps.models import CatalogEntry, Connection, Tool
from orgs.admin_base.actions import form_action
from orgs.admin_base.audit_trail import record
from orgs.admin_base.audited import AuditedAdmin
from orgs.admin_base.org_owned import OrgOwnedAdmin
from orgs.admin_base.service_saves import changed_values, stored

apps.get_app_config("mcps").verbose_name = "MCP"  # not "Mcps"


CONNECTION_FIELDS = ("name", "catalog_key", "transport", "url", "auth_type", "enabled")
CREDENTIALS = ("token", "header_name")


class ConnectionAdminForm(forms.ModelForm[Connection]):
    """The API's rules (no private, loopback or metadata addresses; credentials for the auth type;
    a new URL is pending until synced) are the service's: the admin saves through it. The
    credentials are write-only: stored encrypted, never shown."""

    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown. Leave empty to keep the stored one.",
    )
    header_name = forms.CharField(
        required=False, max_length=100, help_text="For auth type header. Leave empty to keep the stored one."
    )

    class Meta:
        model = Connection
        fields = ["organization", *CONNECTION_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # Django's form arguments, passed on
        super().__init__(*args, **kwargs)
        if self.instance.pk and "url" in self.fields:  # the stored URL's userinfo and query stay hidden
            self.initial["url"] = masked_url(self.instance.url)
            self.fields[
                "url"
            ].help_text = (
                "Shown without userinfo and with every query value as ***: sent back as shown, the stored URL stays."
            )


@admin.register(CatalogEntry)
class CatalogEntryAdmin(AuditedAdmin[CatalogEntry]):
    list_display = ["name", "key", "transport", "auth_type", "url_template"]
    list_filter = ["transport", "auth_type"]
    search_fields = ["name", "key", "description"]


class ToolInline(admin.TabularInline[Tool, Connection]):
    model = Tool
    extra = 0
    fields = ["name", "description", "enabled"]
    readonly_fields = ["name", "description"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False  # tools come from syncing the connection


@admin.register(Connection)
class ConnectionAdmin(OrgOwnedAdmin[Connection]):
    form = ConnectionAdminForm
    list_display = [
        "name",
        "organization",
        "transport",
        "shown_url",
        "status",
        "last_error_short",
        "last_synced_at",
        "has_credentials",
        "enabled",
    ]
    list_filter = ["status", "transport", "auth_type", "enabled", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "url", "organization__name"]
    readonly_fields = ["status", "last_error", "last_synced_at", "has_credentials", "created_at", "updated_at"]
    exclude = ["credentials_encrypted"]  # secrets never show, not even to operators
    list_select_related = ["organization"]
    inlines = [ToolInline]
    actions = ["sync_tools"]

    def get_readonly_fields(self, request: HttpRequest, obj: Connection | None = None) -> list[str]:
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "catalog_key"] if obj is not None else fields  # where it came from stays

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Connection], change: bool) -> Connection:
        data = form.cleaned_data
        secrets = {key: data[key] for key in CREDENTIALS if data.get(key)}
        if change:
            values = {**changed_values(form, CONNECTION_FIELDS), **secrets}
            return services.update_connection(connection=stored(form), data=values)  # type: ignore[arg-type]  # the form's cleaned values: the service's fields
        values = {**{key: data[key] for key in CONNECTION_FIELDS if key in data}, **secrets}
        return services.create_connection(org=data["organization"], data=values)  # type: ignore[arg-type]  # the form's cleaned values: the service's fields

    def save_formset(
        self,
        request: HttpRequest,
        form: forms.ModelForm[Connection],
        formset: BaseInlineFormSet[Tool, Connection, forms.ModelForm[Tool]],
        change: bool,
    ) -> None:
        """The tools' allow-list through the service, as the API sets it."""
        formset.new_objects, formset.deleted_objects, formset.changed_objects = [], [], []
        for tool_form in formset.forms:
            if "enabled" in tool_form.changed_data and not tool_form.instance._state.adding:
                tool = services.set_tool_enabled(tool=tool_form.instance, enabled=tool_form.cleaned_data["enabled"])
                formset.changed_objects.append((tool, ["enabled"]))

    def service_delete(self, request: HttpRequest, obj: Connection) -> None:
        services.delete_connection(connection=obj)

    @admin.display(description="URL")
    def shown_url(self, obj: Connection) -> str:
        return masked_url(obj.url)  # as the API shows it: userinfo and query values are often credentials

    @admin.display(description="Last error")
    def last_error_short(self, obj: Connection) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error or "-"

    @admin.display(description="Credentials stored", boolean=True)
    def has_credentials(self, obj: Connection) -> bool:
        return obj.has_credentials  # whether there are any; never what they are

    @admin.action(description="Sync tools from the MCP server…", permissions=["change"])
    def sync_tools(self, request: HttpRequest, queryset: QuerySet[Connection]) -> HttpResponse:
        return form_action(self, request, queryset.select_related("organization"), title="Sync tools", apply=self._sync)

    def _sync(self, connection: Connection, data: Mapping[str, object], request: HttpRequest) -> None:
        """The sync, in the audit trail whether it succeeds or fails (a failure changes the status)."""
        failure: DomainError | None = None
        details: dict[str, object]
        try:
            result = services.sync_connection(connection=connection)
            details = {"added": result.added, "updated": result.updated, "removed": result.removed}
        except DomainError as exc:
            failure = exc
            connection.refresh_from_db(fields=["status", "last_error"])
            details = {"status": connection.status, "error": str(exc.detail)[:300]}
        record(
            request,
            action="sync_mcp_connection",
            obj=connection,
            org=connection.organization,
            reason=str(data["reason"]),
            details=details,
        )
        if failure is not None:
            raise failure
        self.message_user(
            request,
            f"{connection}: {result.added} added, {result.updated} updated, {result.removed} removed.",
            messages.SUCCESS,
        )


@admin.register(Tool)
class ToolAdmin(OrgOwnedAdmin[Tool]):
    """Tools come from syncing their connection; operators only allow or block them."""

    list_display = ["name", "connection", "organization", "enabled"]
    fields = ["name", "description", "connection", "organization", "input_schema", "enabled"]
    readonly_fields = ["name", "description", "connection", "organization", "input_schema"]

    list_filter = ["enabled"]
    search_fields = ["name", "description", "connection__name"]
    list_select_related = ["connection", "organization"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Tool], change: bool) -> Tool:
        tool = stored(form)
        if "enabled" in form.changed_data:
            tool = services.set_tool_enabled(tool=tool, enabled=form.cleaned_data["enabled"])
        return tool
