"""An organization's billing figures for the organizations' list (one query, however many
organizations), and the list's filters over them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, cast

from django.contrib import admin
from django.db.models import Count, DecimalField, F, IntegerField, Model, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from billing.models import BudgetAlert, Circuit, LedgerEntry
from billing.selectors import BURN_WINDOW_DAYS
from core.credits import period_bounds
from orgs.models import Membership, Organization

CREDITS = DecimalField(max_digits=20, decimal_places=6)


class Figures(Protocol):
    """An organization as ``with_account`` reads it (``with_billing`` adds ``spent_month`` and ``burn_7d``)."""

    balance: Decimal
    reserved: Decimal
    available: Decimal
    open_alerts: int
    members: int
    circuit_state: str


def figures_of(org: Organization) -> Figures:
    """An organization read by ``with_account``: its annotations, typed."""
    return cast(Figures, org)  # the annotations with_account adds


def _sum_of(queryset: QuerySet[LedgerEntry], expression: Combinable) -> Coalesce:
    total = queryset.values("organization").annotate(total=Sum(expression)).values("total")[:1]
    return Coalesce(Subquery(total, output_field=CREDITS), Value(Decimal(0)), output_field=CREDITS)


def _count_of[M: Model](queryset: QuerySet[M]) -> Coalesce:
    count = queryset.values("organization").annotate(count=Count("pk")).values("count")[:1]
    return Coalesce(Subquery(count, output_field=IntegerField()), Value(0))


def with_account(queryset: QuerySet[Organization]) -> QuerySet[Organization]:
    """Organizations with balance, reserved, open alerts, circuit state and member count (each a row
    or an index's count): one query, however many organizations."""
    return queryset.annotate(
        balance=Coalesce(F("credit_account__balance"), Value(Decimal(0)), output_field=CREDITS),
        reserved=Coalesce(F("credit_account__reserved"), Value(Decimal(0)), output_field=CREDITS),
        open_alerts=_count_of(BudgetAlert.objects.filter(organization=OuterRef("pk"), acknowledged_at__isnull=True)),
        members=_count_of(Membership.objects.filter(organization=OuterRef("pk"), status=Membership.Status.ACTIVE)),
        circuit_state=Coalesce(F("circuit__state"), Value(Circuit.State.CLOSED)),
    ).annotate(available=F("balance") - F("reserved"))


def with_billing(queryset: QuerySet[Organization], now: datetime | None = None) -> QuerySet[Organization]:
    """Organizations with their account's figures (``with_account``), this month's spend and the last
    7 days' burn from their usage entries: one query, however many organizations (one organization's
    page reads its spend from its days instead, ``usage_chart.usage_of``)."""
    now = now or timezone.now()
    month_start, _ = period_bounds(now)
    usage = LedgerEntry.objects.filter(organization=OuterRef("pk"), kind=LedgerEntry.Kind.USAGE)
    return with_account(queryset).annotate(
        spent_month=_sum_of(usage.filter(created_at__gte=month_start), -F("amount")),
        burn_7d=_sum_of(usage.filter(created_at__gte=now - timedelta(days=BURN_WINDOW_DAYS)), -F("amount")),
    )


class CircuitStateFilter(admin.SimpleListFilter):
    title = "circuit"
    parameter_name = "circuit"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Organization]) -> list[tuple[str, str]]:
        return [("open", "Open (spending stopped)"), ("closed", "Closed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Organization]) -> QuerySet[Organization]:
        if self.value() in ("open", "closed"):
            return queryset.filter(Q(circuit_state=self.value()))  # an annotation: Q, which the stubs leave unchecked
        return queryset


class RunwayFilter(admin.SimpleListFilter):
    """Which organizations run out within a week: what is available is less than 7 days of the last 7
    days' burn."""

    title = "runway"
    parameter_name = "runway"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Organization]) -> list[tuple[str, str]]:
        return [("week", "Runs out within a week"), ("empty", "Nothing available")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Organization]) -> QuerySet[Organization]:
        if self.value() == "week":
            return queryset.filter(Q(burn_7d__gt=0, available__lt=F("burn_7d")))
        if self.value() == "empty":
            return queryset.filter(Q(available__lte=0))
        return queryset


class SpendFilter(admin.SimpleListFilter):
    title = "spend this month"
    parameter_name = "spend"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Organization]) -> list[tuple[str, str]]:
        return [("top10", "Top 10 spenders"), ("none", "Nothing spent")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Organization]) -> QuerySet[Organization]:
        if self.value() == "top10":
            top = (
                queryset.filter(Q(spent_month__gt=0))
                .order_by(F("spent_month").desc())
                .values_list("pk", flat=True)[:10]
            )
            return queryset.filter(pk__in=list(top))
        if self.value() == "none":
            return queryset.filter(Q(spent_month=0))
        return queryset
