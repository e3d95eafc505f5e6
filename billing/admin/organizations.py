"""The organization's page as orgs draws it, with its credits, alerts, circuit and usage."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from billing.admin.actions import (
    AdjustForm,
    GrantForm,
    acknowledge_and_record,
    adjust_and_record,
    circuit_actions,
    grant_and_record,
)
from billing.admin.alerts import OpenAlertInline
from billing.admin.circuit_events import CircuitEventInline
from billing.admin.ledger_csv import ledger_csv, month_bounds
from billing.admin.organization_figures import (
    CircuitStateFilter,
    RunwayFilter,
    SpendFilter,
    figures_of,
    with_account,
    with_billing,
)
from billing.admin.permissions import MONEY, AcknowledgePermission, MoneyPermission
from billing.admin.usage_chart import Usage, usage_of, usage_svg
from billing.models import BudgetAlert, Circuit
from core.credits import period_bounds
from orgs.admin import OrganizationAdmin
from orgs.admin_base.actions import form_action
from orgs.admin_base.display import credits_text
from orgs.models import Organization

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec  # the stubs' name for a page's fieldsets


def page_usage(org: Organization) -> Usage:
    """The organization's usage as its page shows it (chart, spend, burn), read once per page."""
    found = getattr(org, "_page_usage", None)
    if found is None:
        found = org._page_usage = usage_of(org, timezone.now())  # type: ignore[attr-defined]  # kept for the page
    return found


def _name(org: Organization) -> str:
    return org.name


class BillingOrganizationAdmin(MoneyPermission, AcknowledgePermission, OrganizationAdmin):
    """The organization's page as orgs draws it, with its credits, alerts, circuit and usage."""

    list_display = [
        "name",
        "slug",
        "balance_display",
        "reserved_display",
        "spent_display",
        "open_alerts_display",
        "circuit_display",
        "members_display",
        "budget_display",
    ]
    list_filter = [CircuitStateFilter, RunwayFilter, SpendFilter, "created_at"]
    inlines = [*OrganizationAdmin.inlines, OpenAlertInline, CircuitEventInline]
    billing_fields = [
        "balance_display",
        "reserved_display",
        "spent_display",
        "burn_display",
        "circuit_display",
        "open_alerts_display",
        "members_display",
        "exports",
    ]
    readonly_fields = [*OrganizationAdmin.readonly_fields, *billing_fields, "usage_chart"]

    actions = [
        "grant_credits",
        "adjust_credits",
        *circuit_actions(_name),
        "acknowledge_alerts",
        "export_ledger",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return with_billing(super().get_queryset(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Organization | None:
        """One organization with its account's figures; its spend comes from its days (``page_usage``),
        not from summing a month of entries."""
        if from_field is not None:  # by another field (a to_field lookup): the list's figures
            return super().get_object(request, object_id, from_field)
        queryset = with_account(super().get_queryset(request))
        try:
            return queryset.get(pk=Organization._meta.pk.to_python(object_id))
        except (Organization.DoesNotExist, ValidationError, ValueError):
            return None

    def get_fieldsets(self, request: HttpRequest, obj: Organization | None = None) -> _FieldsetSpec:
        if obj is None:
            return super().get_fieldsets(request, obj)  # a new organization: its name and owner
        fieldsets: _FieldsetSpec = [
            (None, {"fields": ["name", "slug", "billing_email", "monthly_budget", "low_balance_threshold"]})
        ]
        fieldsets = [
            *fieldsets,
            ("Credits", {"fields": [*self.billing_fields]}),
            ("Usage over the last 30 days", {"fields": ["usage_chart"]}),
            ("API keys", {"fields": ["api_keys_display"]}),
            ("Record", {"fields": ["id", "created_at", "updated_at"]}),
        ]
        return self.with_reason(request, obj, fieldsets)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.ledger_csv_view)
        return [path("<uuid:object_id>/ledger.csv", view, name="orgs_organization_ledger_csv"), *super().get_urls()]

    def ledger_csv_view(self, request: HttpRequest, object_id: uuid.UUID) -> HttpResponse:
        if not (self.has_view_permission(request) and request.user.has_perm("billing.view_ledgerentry")):
            raise PermissionDenied
        org = Organization.objects.filter(pk=object_id).first()
        if org is None:
            raise Http404("No such organization.")
        start, end = month_bounds(request.GET.get("month"))
        return ledger_csv(org, start, end)

    # the columns and fields
    @admin.display(description="Balance", ordering="balance")
    def balance_display(self, obj: Organization) -> str:
        return credits_text(figures_of(obj).balance)

    @admin.display(description="Reserved", ordering="reserved")
    def reserved_display(self, obj: Organization) -> str:
        return credits_text(figures_of(obj).reserved)

    @admin.display(description="Spent this month", ordering="spent_month")
    def spent_display(self, obj: Organization) -> str:
        spent = getattr(obj, "spent_month", None)
        if spent is not None:  # a row of the list
            return credits_text(spent)
        return credits_text(page_usage(obj).spent_this_period)

    @admin.display(description="Used in the last 7 days", ordering="burn_7d")
    def burn_display(self, obj: Organization) -> str:
        burn = getattr(obj, "burn_7d", None)
        if burn is not None:  # a row of the list
            return credits_text(burn)
        return credits_text(page_usage(obj).burned_last_week)

    @admin.display(description="Open alerts", ordering="open_alerts")
    def open_alerts_display(self, obj: Organization) -> int:
        return figures_of(obj).open_alerts

    @admin.display(description="Circuit", ordering="circuit_state")
    def circuit_display(self, obj: Organization) -> str:
        return "open (spending stopped)" if figures_of(obj).circuit_state == Circuit.State.OPEN else "closed"

    @admin.display(description="Members", ordering="members")
    def members_display(self, obj: Organization) -> int:
        return figures_of(obj).members

    @admin.display(description="Monthly budget", ordering="monthly_budget")
    def budget_display(self, obj: Organization) -> str:
        return credits_text(obj.monthly_budget)

    @admin.display(description="Ledger for invoicing (CSV)")
    def exports(self, obj: Organization) -> str:
        now = timezone.now()
        last = (period_bounds(now)[0] - timedelta(days=1)).strftime("%Y-%m")
        url = reverse("admin:orgs_organization_ledger_csv", args=[obj.pk])
        months = [(now.strftime("%Y-%m"), "this month"), (last, "last month")]
        return format_html_join(" · ", '<a href="{}?month={}">{} ({})</a>', ((url, m, label, m) for m, label in months))

    @admin.display(description="Credits used per day, by model")
    def usage_chart(self, obj: Organization) -> SafeString:
        return usage_svg(page_usage(obj))

    # the actions
    @admin.action(description="Grant credits…", permissions=[MONEY])
    def grant_credits(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        return form_action(
            self,
            request,
            queryset,
            form_class=GrantForm,
            title="Grant credits",
            apply=grant_and_record,
            label=lambda org: f"{org.name} (balance {credits_text(figures_of(org).balance)})",
        )

    @admin.action(description="Adjust or refund credits…", permissions=[MONEY])
    def adjust_credits(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        return form_action(
            self,
            request,
            queryset,
            form_class=AdjustForm,
            title="Adjust or refund credits",
            apply=adjust_and_record,
            label=lambda org: f"{org.name} (balance {credits_text(figures_of(org).balance)})",
        )

    @admin.action(description="Acknowledge the open alerts…", permissions=["acknowledge"])
    def acknowledge_alerts(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        with_alerts = queryset.filter(Q(open_alerts__gt=0))  # an annotation: Q, which the stubs leave unchecked
        if not with_alerts.exists():
            self.message_user(request, "The selected organizations have no open alerts.", messages.WARNING)
            return None

        def apply(org: Organization, data: Mapping[str, object], req: HttpRequest) -> int:
            ids = list(
                BudgetAlert.objects.for_org(org).filter(acknowledged_at__isnull=True).values_list("pk", flat=True)
            )
            return acknowledge_and_record(org, ids, str(data["reason"]), req)

        return form_action(
            self,
            request,
            with_alerts,
            title="Acknowledge the open alerts",
            apply=apply,
            label=lambda org: f"{org.name} ({figures_of(org).open_alerts} open alert(s))",
        )

    @admin.action(description="Export this month's ledger (CSV)", permissions=["view"])
    def export_ledger(self, request: HttpRequest, queryset: QuerySet[Organization]) -> HttpResponse | None:
        orgs = list(queryset[:2])
        if len(orgs) != 1:
            self.message_user(request, "Select one organization to export.", messages.WARNING)
            return None
        if not request.user.has_perm("billing.view_ledgerentry"):
            raise PermissionDenied
        start, end = month_bounds(request.POST.get("month"))
        return ledger_csv(orgs[0], start, end)
