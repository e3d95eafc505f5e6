from __future__ import annotations

from django import forms
from django.apps import apps
from django.contrib import admin, messages

from core.errors import DomainError
from mcps import services
from mcps.models import CatalogEntry, Connection, Tool
from mcps.security import check_url
from orgs.admin_mixins import OrgOwnedAdmin, record

apps.get_app_config("mcps").verbose_name = "MCP"  # not "Mcps"


class ConnectionAdminForm(forms.ModelForm):
    """The API's URL rule holds in the admin too (no private, loopback or metadata addresses)."""

    class Meta:
        model = Connection
        fields = ["organization", "name", "catalog_key", "transport", "url", "auth_type", "enabled"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            check_url(url)
        except DomainError as exc:
            raise forms.ValidationError(exc.detail) from None
        return url


@admin.register(CatalogEntry)
class CatalogEntryAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "transport", "auth_type", "url_template"]
    list_filter = ["transport", "auth_type"]
    search_fields = ["name", "key", "description"]


class ToolInline(admin.TabularInline):
    model = Tool
    extra = 0
    fields = ["name", "description", "enabled"]
    readonly_fields = ["name", "description"]
    can_delete = False


@admin.register(Connection)
class ConnectionAdmin(OrgOwnedAdmin):
    form = ConnectionAdminForm
    list_display = [
        "name",
        "organization",
        "transport",
        "url",
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

    @admin.display(description="Last error")
    def last_error_short(self, obj) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error or "-"

    @admin.display(description="Credentials stored", boolean=True)
    def has_credentials(self, obj) -> bool:
        return obj.has_credentials  # whether there are any; never what they are

    @admin.action(description="Sync tools from the MCP server", permissions=["change"])
    def sync_tools(self, request, queryset):
        for connection in queryset.select_related("organization"):
            try:
                result = services.sync_connection(connection=connection)
            except DomainError as exc:
                connection.refresh_from_db(fields=["status", "last_error"])
                record(
                    request,
                    action="sync_mcp_connection",
                    obj=connection,
                    org=connection.organization,
                    details={"status": connection.status, "error": str(exc.detail)[:300]},
                )
                self.message_user(request, f"{connection}: {exc.detail}", messages.ERROR)
            else:
                record(
                    request,
                    action="sync_mcp_connection",
                    obj=connection,
                    org=connection.organization,
                    details={"added": result.added, "updated": result.updated, "removed": result.removed},
                )
                self.message_user(
                    request,
                    f"{connection}: {result.added} added, {result.updated} updated, {result.removed} removed.",
                    messages.SUCCESS,
                )


@admin.register(Tool)
class ToolAdmin(OrgOwnedAdmin):
    """Tools come from syncing their connection; operators only allow or block them."""

    list_display = ["name", "connection", "organization", "enabled"]
    fields = ["name", "description", "connection", "organization", "input_schema", "enabled"]
    readonly_fields = ["name", "description", "connection", "organization", "input_schema"]

    def has_add_permission(self, request) -> bool:
        return False

    list_filter = ["enabled"]
    search_fields = ["name", "description", "connection__name"]
    list_select_related = ["connection", "organization"]
