"""The budget alerts' page (acknowledged from there or from the organization's page), and the open
alerts on an organization's page."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from billing.admin.actions import acknowledge_and_record
from billing.admin.permissions import AcknowledgePermission
from billing.models import BudgetAlert
from orgs.admin_base.actions import form_action
from orgs.admin_base.display import credits_text
from orgs.admin_base.read_only import ReadOnlyAdmin
from orgs.models import Organization


def threshold_text(alert: BudgetAlert) -> str:
    if alert.threshold is None:
        return "-"
    if alert.kind == BudgetAlert.Kind.BUDGET_THRESHOLD:
        return f"{alert.threshold.normalize():f}% of the monthly budget"
    return f"balance below {credits_text(alert.threshold)}"


@admin.register(BudgetAlert)
class BudgetAlertAdmin(AcknowledgePermission, ReadOnlyAdmin[BudgetAlert]):
    list_display = ["created_at", "organization", "kind", "threshold_display", "message", "acknowledged"]
    list_filter = [
        "kind",
        ("acknowledged_at", admin.EmptyFieldListFilter),
        ("organization", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["organization__name", "message"]
    fields = readonly_fields = (
        "organization",
        "kind",
        "threshold_display",
        "period_start",
        "message",
        "created_at",
        "acknowledged",
    )
    list_select_related = ["organization", "acknowledged_by"]
    actions = ["acknowledge"]

    @admin.display(description="Threshold")
    def threshold_display(self, obj: BudgetAlert) -> str:
        return threshold_text(obj)

    @admin.display(description="Acknowledged", ordering="acknowledged_at")
    def acknowledged(self, obj: BudgetAlert) -> str:
        if obj.acknowledged_at is None:
            return "open"
        by = obj.acknowledged_by.email if obj.acknowledged_by else "someone"
        return f"{obj.acknowledged_at:%Y-%m-%d %H:%M} by {by}"

    @admin.action(description="Acknowledge the selected alerts…", permissions=["acknowledge"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[BudgetAlert]) -> HttpResponse | None:
        open_alerts = queryset.filter(acknowledged_at__isnull=True).select_related("organization")
        if not open_alerts.exists():
            self.message_user(request, "The selected alerts are already acknowledged.", messages.WARNING)
            return None
        return form_action(
            self,
            request,
            open_alerts,
            title="Acknowledge alerts",
            apply=lambda alert, data, req: acknowledge_and_record(alert.organization, [alert.pk], data["reason"], req),
            label=lambda alert: f"{alert.organization.name}: {alert.message}",
        )


class OpenAlertInline(admin.TabularInline[BudgetAlert, Organization]):
    model = BudgetAlert
    fk_name = "organization"
    extra = 0
    fields = readonly_fields = ("created_at", "kind", "threshold_display", "message")
    can_delete = False
    verbose_name = "open alert"
    verbose_name_plural = "open alerts"
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[BudgetAlert]:
        return super().get_queryset(request).filter(acknowledged_at__isnull=True)

    @admin.display(description="Threshold")
    def threshold_display(self, obj: BudgetAlert) -> str:
        return threshold_text(obj)

    def has_add_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False
