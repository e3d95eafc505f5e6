from __future__ import annotations

from django.contrib import admin

from orgs.models import Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "organization"
    extra = 0
    fields = ["user", "role", "status", "joined_at"]
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "billing_email", "monthly_budget", "created_at"]
    search_fields = ["name", "slug", "billing_email"]
    list_filter = ["created_at"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MembershipInline]

    def has_delete_permission(self, request, obj=None) -> bool:
        # an organization's ledger is append-only history (and protected in the database)
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "status", "joined_at"]
    list_filter = ["role", "status"]
    search_fields = ["user__email", "user__name", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]
