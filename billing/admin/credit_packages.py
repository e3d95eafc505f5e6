"""The credit packages' page: platform configuration, each change with its reason in the audit trail."""

from __future__ import annotations

from django.contrib import admin

from billing.models import CreditPackage
from orgs.admin_base.audited import AuditedAdmin
from orgs.admin_base.display import credits_text


@admin.register(CreditPackage)
class CreditPackageAdmin(AuditedAdmin[CreditPackage]):
    list_display = ["name", "credits_display", "price_cents", "currency", "active"]
    list_filter = ["active", "currency"]

    @admin.display(description="Credits", ordering="credits")
    def credits_display(self, obj: CreditPackage) -> str:
        return credits_text(obj.credits)
