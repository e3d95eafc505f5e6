from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from accounts.admin import UserAdmin
from accounts.models import User
from orgs import selectors
from orgs.admin_mixins import LabelledAdmin, ReadOnlyAdmin
from orgs.models import AuditEntry, Membership, Organization, Role


class MembershipInline(admin.TabularInline):
    """Members at a glance; roles change on the membership's own page (which keeps an owner)."""

    model = Membership
    fk_name = "organization"
    extra = 0
    fields = ["user", "user_name", "role", "status", "joined_at"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @admin.display(description="Name")
    def user_name(self, obj) -> str:
        return obj.user.name

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organization", "role", "status", "joined_at"]

    def clean(self) -> dict:
        data = super().clean()
        stored = self.instance
        demoted = data.get("role", stored.role) != Role.OWNER or data.get("status", stored.status) != stored.status  # type: ignore[union-attr]
        if stored.pk and demoted and selectors.is_last_active_owner(stored):
            raise forms.ValidationError("An organization must keep at least one active owner.")
        return data  # type: ignore[return-value]


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
class MembershipAdmin(LabelledAdmin):
    form = MembershipAdminForm
    list_display = ["membership", "user", "organization", "role", "status", "joined_at"]
    list_display_links = ["membership"]
    list_filter = ["role", "status", "organization"]
    search_fields = ["user__email", "user__name", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "organization"] if obj is not None else []

    def object_label(self, obj) -> str:
        return f"{obj.user.email} in {obj.organization.name} ({obj.role})"

    @admin.display(description="Membership", ordering="user__email")
    def membership(self, obj) -> str:
        return self.object_label(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not (obj is not None and selectors.is_last_active_owner(obj))

    def delete_queryset(self, request, queryset) -> None:
        kept = selectors.owners_a_deletion_would_remove(queryset)
        if kept:
            self.message_user(request, f"Kept {len(kept)} owner(s): every organization keeps one.", messages.WARNING)
        queryset.exclude(pk__in=kept).delete()


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The audit trail of the back office: who changed what, when and why. Read-only."""

    list_display = ["created_at", "actor", "organization", "action", "object_repr", "reason"]
    list_filter = ["action", "organization"]
    search_fields = ["actor__email", "organization__name", "object_repr", "object_id", "reason"]
    list_select_related = ["actor", "organization"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "actor",
        "organization",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "reason",
        "details",
    ]
    readonly_fields = fields  # type: ignore[assignment]


class UserMembershipInline(admin.TabularInline):
    """Memberships at a glance; they change on their own page (which keeps every org owned)."""

    model = Membership
    fk_name = "user"
    extra = 0
    fields = ["organization", "role", "status", "joined_at"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class UserWithMembershipsAdmin(UserAdmin):
    """The user's page as identity draws it, with the organizations they belong to."""

    inlines = [*UserAdmin.inlines, UserMembershipInline]


admin.site.unregister(User)
admin.site.register(User, UserWithMembershipsAdmin)
