from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.models import Group
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.admin import RefreshTokenAdmin, UserAdmin
from accounts.models import User
from accounts.services import revoke_refresh_token
from core.errors import ValidationFailed
from orgs import selectors, services
from orgs.admin_base.actions import form_action
from orgs.admin_base.audit_trail import REASON, SECRET, reason_field, record
from orgs.admin_base.audited import AuditedAdmin
from orgs.admin_base.display import LabelledAdmin, table_html, when_text
from orgs.admin_base.read_only import ReadOnlyAdmin
from orgs.admin_base.service_saves import CleanedData, changed_values, operator_context, stored
from orgs.models import ApiKey, AuditEntry, Membership, Organization

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups, _FieldsetSpec  # the stubs' names for a page's fields


def _operator(request: HttpRequest) -> User:
    """The signed-in operator (the admin's pages need one)."""
    user = request.user
    assert isinstance(user, User)
    return user


class MembershipInline(admin.TabularInline[Membership, Organization]):
    """Members at a glance; roles change on the membership's own page (which keeps an owner)."""

    model = Membership
    fk_name = "organization"
    extra = 0
    fields: ClassVar[tuple[str, ...]] = ("user", "user_name", "role", "status", "joined_at")  # a page may add columns
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user")

    @admin.display(description="Name")
    def user_name(self, obj: Membership) -> str:
        return obj.user.name

    def has_add_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False


class MembershipAdminForm(forms.ModelForm[Membership]):
    class Meta:
        model = Membership
        fields = ["user", "organization", "role", "status", "joined_at"]

    def clean(self) -> CleanedData:
        """A status change has no service: the last active owner stays active here (a role change is
        ``change_role``'s to check)."""
        data = super().clean() or {}
        membership = self.instance
        status_changed = "status" in data and data["status"] != membership.status
        if membership.pk and status_changed and selectors.is_last_active_owner(membership):
            raise forms.ValidationError("An organization must keep at least one active owner.")
        return data


ORG_FIELDS = ("name", "monthly_budget", "low_balance_threshold")
SHOWN = 50  # the newest API keys on an organization's page; the rest in their list
# what the page reads of a key: never ``secret_hash``
API_KEY_COLUMNS = ("name", "prefix", "role", "specialist_ids", "created_at", "last_used_at", "expires_at", "revoked_at")


class OrganizationAddForm(forms.ModelForm[Organization]):
    """A new organization starts as a sign-up starts one: with its owner, and (through the same
    service) its credit account and sign-up credits."""

    owner = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True),
        widget=AutocompleteSelect(Membership._meta.get_field("user"), admin.site),
        help_text="Becomes its owner. The billing email is the owner's until it is changed.",
    )

    class Meta:
        model = Organization
        fields = ["name"]


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin[Organization]):
    list_display = ["name", "slug", "billing_email", "monthly_budget", "created_at"]
    search_fields = ["name", "slug", "billing_email"]
    list_filter = ["created_at"]
    readonly_fields = ["id", "slug", "created_at", "updated_at", "api_keys_display"]
    inlines = [MembershipInline]
    add_fieldsets: _FieldsetSpec = [(None, {"fields": ["name", "owner"]})]
    service_error_fields = {"organizationName": "name"}

    def has_delete_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        # an organization's ledger is append-only history (and protected in the database)
        return False

    def get_fieldsets(self, request: HttpRequest, obj: Organization | None = None) -> _FieldsetSpec:
        if obj is None:
            return self.with_reason(request, obj, self.add_fieldsets)
        return super().get_fieldsets(request, obj)

    def get_form(
        self, request: HttpRequest, obj: Organization | None = None, change: bool = False, **kwargs: object
    ) -> type[forms.ModelForm[Organization]]:
        if obj is None:
            kwargs["form"] = OrganizationAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(
        self, request: HttpRequest, obj: Organization | None
    ) -> tuple[type[InlineModelAdmin[Model, Organization]], ...]:
        """The page's inlines (a page built on this one may add or replace some); none while adding:
        a new organization's members are its owner."""
        return tuple(self.inlines) if obj is not None else ()

    @admin.display(description="API keys")
    def api_keys_display(self, obj: Organization) -> str:
        """The org's newest keys, one query: name, prefix (never the secret nor its hash), role, how many
        specialists a key is limited to, when it was made, last used, expires and was revoked."""
        if obj.pk is None:
            return "-"
        keys = list(ApiKey.objects.for_org(obj).only(*API_KEY_COLUMNS).order_by("-created_at")[: SHOWN + 1])
        rows = [
            (
                format_html('<a href="{}">{}</a>', reverse("admin:orgs_apikey_change", args=[key.pk]), key.name),
                f"lc_{key.prefix}_…",
                key.role,
                "all" if key.specialist_ids is None else len(key.specialist_ids),
                when_text(key.created_at),
                when_text(key.last_used_at),
                when_text(key.expires_at),
                when_text(key.revoked_at),
            )
            for key in keys[:SHOWN]
        ]
        headers = ["Name", "Prefix", "Role", "Specialists", "Created", "Last used", "Expires", "Revoked"]
        table = table_html(headers, rows, empty="No API keys.")
        every = reverse("admin:orgs_apikey_changelist") + f"?organization__id__exact={obj.pk}"
        more = f"The newest {SHOWN} shown: all its API keys" if len(keys) > SHOWN else "Its API keys' list"
        return format_html('{}<p><a href="{}">{}</a></p>', table, every, more)

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Organization], change: bool) -> Organization:
        if not change:  # the service behind sign-up: the owner's membership (signup adds the credits)
            data = form.cleaned_data
            return services.create_organization(name=data["name"], owner=data["owner"])
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
class MembershipAdmin(AuditedAdmin[Membership], LabelledAdmin[Membership]):
    form = MembershipAdminForm
    list_display = ["membership", "user", "organization", "role", "status", "joined_at"]
    list_display_links = ["membership"]
    list_filter = ["role", "status", "organization"]
    search_fields = ["user__email", "user__name", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]

    def get_fields(self, request: HttpRequest, obj: Membership | None = None) -> _FieldGroups:
        # a new member is invited with a role; the invitation decides the status
        return super().get_fields(request, obj) if obj is not None else ["user", "organization", "role"]

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> list[str]:
        # status follows the services (an invitation accepted, a member removed), never a form
        return ["user", "organization", "status", "joined_at"] if obj is not None else []

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Membership], change: bool) -> Membership:
        data = form.cleaned_data
        if not change:
            membership, _ = services.invite_member(
                context=operator_context(data["organization"]),
                inviter=_operator(request),
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

    def service_delete(self, request: HttpRequest, obj: Membership) -> None:
        services.remove_member(
            context=operator_context(obj.organization), actor=_operator(request), user_id=obj.user_id
        )

    def object_label(self, obj: Membership) -> str:
        return f"{obj.user.email} in {obj.organization.name} ({obj.role})"

    @admin.display(description="Membership", ordering="user__email")
    def membership(self, obj: Membership) -> str:
        return self.object_label(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return not (obj is not None and selectors.is_last_active_owner(obj))


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin[ApiKey]):
    """The orgs' API keys, for operators: who made them, their limits, use and revocation. Never the
    secret (only its hash is stored, and the admin does not show even that)."""

    list_display = ["name", "prefix", "organization", "role", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role", "organization"]
    search_fields = ["name", "prefix", "organization__name"]
    list_select_related = ["organization"]
    fields = [
        "name",
        "prefix",
        "organization",
        "role",
        "specialist_ids",
        "monthly_credit_limit",
        "expires_at",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin[AuditEntry]):
    """The audit trail of the back office: who changed what, when and why. Read-only."""

    list_display = ["created_at", "actor", "organization", "action", "object_repr", "reason"]
    list_filter = ["action", "organization"]
    search_fields = ["actor__email", "organization__name", "object_repr", "object_id", "reason"]
    list_select_related = ["actor", "organization"]
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "actor",
        "organization",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "reason",
        "details",
    )
    readonly_fields = fields


class UserMembershipInline(admin.TabularInline[Membership, User]):
    """Memberships at a glance; they change on their own page (which keeps every org owned)."""

    model = Membership
    fk_name = "user"
    extra = 0
    fields = ("organization", "role", "status", "joined_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return False


class ReasonedPasswordChangeForm(AdminPasswordChangeForm[User]):
    """An operator setting someone's password says why, like every other change."""

    audit_reason = reason_field()


class UserWithMembershipsAdmin(AuditedAdmin[User], UserAdmin):
    """The user's page as identity draws it, with the organizations they belong to; audited."""

    inlines = [*UserAdmin.inlines, UserMembershipInline]
    change_password_form = ReasonedPasswordChangeForm

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
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
class AuditedGroupAdmin(AuditedAdmin[Group], GroupAdmin):
    """Groups carry permissions (the money permission too): a change to one is audited like any."""


admin.site.unregister(OutstandingToken)


@admin.register(OutstandingToken)
class AuditedRefreshTokenAdmin(RefreshTokenAdmin):
    """The refresh tokens as identity shows them (never the token itself), and revoking one: a
    reason asked, and the audit trail."""

    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest, obj: OutstandingToken | None = None) -> bool:
        return request.user.has_perm("token_blacklist.add_blacklistedtoken")

    @admin.action(description="Revoke the selected refresh tokens…", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[OutstandingToken]) -> HttpResponse | None:
        live = queryset.filter(blacklistedtoken__isnull=True).select_related("user")
        if not live.exists():
            self.message_user(request, "The selected refresh tokens are already revoked.", messages.WARNING)
            return None
        return form_action(
            self,
            request,
            live,
            title="Revoke refresh tokens",
            apply=_revoke,
            label=lambda token: f"{token.user or 'no user'}: signed in {token.created_at:%Y-%m-%d %H:%M} ({token.jti})",
        )


def _revoke(token: OutstandingToken, data: CleanedData, request: HttpRequest) -> None:
    if not revoke_refresh_token(outstanding=token):
        raise ValidationFailed("token", "It was already revoked.")
    record(
        request,
        action="revoke_refresh_token",
        obj=token,
        org=None,
        reason=data["reason"],
        details={"user": str(token.user_id) if token.user_id else None, "jti": token.jti},
    )
