from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.models import Group

from accounts.admin import UserAdmin
from accounts.models import User
from orgs import selectors, services
from orgs.admin_mixins import (
    REASON,
    SECRET,
    AuditedAdmin,
    LabelledAdmin,
    ReadOnlyAdmin,
    changed_values,
    operator_context,
    reason_field,
    record,
    stored,
)
from orgs.models import AuditEntry, Membership, Organization


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
        """A status change has no service: the last active owner stays active here (a role change is
        ``change_role``'s to check)."""
        data = super().clean() or {}
        membership = self.instance
        status_changed = "status" in data and data["status"] != membership.status
        if membership.pk and status_changed and selectors.is_last_active_owner(membership):
            raise forms.ValidationError("An organization must keep at least one active owner.")
        return data


ORG_FIELDS = ("name", "monthly_budget", "low_balance_threshold")


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = ["name", "slug", "billing_email", "monthly_budget", "created_at"]
    search_fields = ["name", "slug", "billing_email"]
    list_filter = ["created_at"]
    readonly_fields = ["id", "slug", "created_at", "updated_at"]
    inlines = [MembershipInline]

    def has_add_permission(self, request) -> bool:
        # an organization starts with its owner (sign-up), which also opens its credit account
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # an organization's ledger is append-only history (and protected in the database)
        return False

    def service_save(self, request, form, change):
        org = stored(form)
        data = changed_values(form, (*ORG_FIELDS, "billing_email"))
        if data.keys() & set(ORG_FIELDS):
            org = services.update_organization(
                org=org,
                name=data.get("name", org.name),
                **{key: data[key] for key in ORG_FIELDS[1:] if key in data},
            )
        if "billing_email" in data:
            org = services.set_billing_email(org=org, billing_email=data["billing_email"])
        return org


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin, LabelledAdmin):
    form = MembershipAdminForm
    list_display = ["membership", "user", "organization", "role", "status", "joined_at"]
    list_display_links = ["membership"]
    list_filter = ["role", "status", "organization"]
    search_fields = ["user__email", "user__name", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]

    def get_fields(self, request, obj=None):
        # a new member is invited with a role; the invitation decides the status
        return super().get_fields(request, obj) if obj is not None else ["user", "organization", "role"]

    def get_readonly_fields(self, request, obj=None):
        # status follows the services (an invitation accepted, a member removed), never a form
        return ["user", "organization", "status", "joined_at"] if obj is not None else []

    def service_save(self, request, form, change):
        data = form.cleaned_data
        if not change:
            membership, _ = services.invite_member(
                context=operator_context(data["organization"]),
                inviter=request.user,
                email=data["user"].email,
                role=data["role"],
            )
            return membership
        membership = stored(form)
        if "role" in form.changed_data:
            membership = services.change_role(
                context=operator_context(membership.organization), user_id=membership.user_id, role=data["role"]
            )
        return membership

    def service_delete(self, request, obj) -> None:
        services.remove_member(context=operator_context(obj.organization), actor=request.user, user_id=obj.user_id)

    def object_label(self, obj) -> str:
        return f"{obj.user.email} in {obj.organization.name} ({obj.role})"

    @admin.display(description="Membership", ordering="user__email")
    def membership(self, obj) -> str:
        return self.object_label(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not (obj is not None and selectors.is_last_active_owner(obj))


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


class ReasonedPasswordChangeForm(AdminPasswordChangeForm):
    """An operator setting someone's password says why, like every other change."""

    audit_reason = reason_field()


class UserWithMembershipsAdmin(AuditedAdmin, UserAdmin):
    """The user's page as identity draws it, with the organizations they belong to; audited."""

    inlines = [*UserAdmin.inlines, UserMembershipInline]
    change_password_form = ReasonedPasswordChangeForm

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = self.get_object(request, id)
            if user is not None:  # the admin's own log has the change; the trail has it too
                record(
                    request,
                    action="user_password_changed",
                    obj=user,
                    org=None,
                    reason=request.POST.get(REASON, ""),  # the form has checked it is given
                    details={"password": SECRET},
                    log=False,
                )
        return response


admin.site.unregister(User)
admin.site.register(User, UserWithMembershipsAdmin)


admin.site.unregister(Group)


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    """Groups carry permissions (the money permission too): a change to one is audited like any."""
