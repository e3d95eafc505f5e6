"""The model rates' page: platform configuration, each change with its reason in the audit trail."""

from __future__ import annotations

from django.contrib import admin

from billing.models import ModelRate
from orgs.admin_base.audited import AuditedAdmin


@admin.register(ModelRate)
class ModelRateAdmin(AuditedAdmin[ModelRate]):
    """Platform configuration: every change asks a reason and is in the audit trail (so it is made
    on the rate's page, not in the list)."""

    list_display = ["model", "provider", "display_name", "rates", "context_window", "active"]
    list_filter = ["provider", "active"]
    search_fields = ["model", "display_name"]

    @admin.display(description="Credits per million tokens (in / out)")
    def rates(self, obj: ModelRate) -> str:
        return f"{obj.input_credits_per_million:,.2f} / {obj.output_credits_per_million:,.2f}"
