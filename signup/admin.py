"""The organizations admin as the back office uses it: billing's page of an organization with its
webhooks and last deliveries, added the way a sign-up opens one (the owner's membership, the credit
account, the sign-up credits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from billing.admin.member_spend import MemberSpendInline
from billing.admin.organizations import BillingOrganizationAdmin
from orgs.admin import MembershipInline
from orgs.models import Organization
from signup.services import open_organization
from webhooks.admin import OrganizationWebhooks

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec  # the stubs' name for a page's fieldsets


class OrganizationAdmin(OrganizationWebhooks, BillingOrganizationAdmin):
    # the members with their spend this month against their cap
    inlines = [MemberSpendInline if i is MembershipInline else i for i in BillingOrganizationAdmin.inlines]
    readonly_fields = [*BillingOrganizationAdmin.readonly_fields, *OrganizationWebhooks.WEBHOOK_FIELDS]

    def get_fieldsets(self, request: HttpRequest, obj: Organization | None = None) -> _FieldsetSpec:
        """Billing's page, with the organization's webhooks and last deliveries before its record."""
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None:
            return fieldsets
        names = [name for name, _ in fieldsets]
        at = names.index("Record") if "Record" in names else len(fieldsets)
        return [*fieldsets[:at], ("Webhooks", {"fields": list(self.WEBHOOK_FIELDS)}), *fieldsets[at:]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        """A new organization opens with the sign-up credits: adding one mints credits, so it also
        needs the money permission."""
        return super().has_add_permission(request) and self.has_manage_credits_permission(request)

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Organization], change: bool) -> Organization:
        if change:
            return super().service_save(request, form, change)
        data = form.cleaned_data
        return open_organization(name=data["name"], owner=data["owner"])


admin.site.unregister(Organization)
admin.site.register(Organization, OrganizationAdmin)
