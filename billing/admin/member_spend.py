"""The members on an organization's admin page with their spend this period against their monthly
cap (``member_budget``): the members' inline of orgs, with what the settlements counted for each
(``PayerSpend``, the ledger's sum for a member without a row this period), in one query."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from billing.models import LedgerEntry, PayerSpend
from core.credits import period_bounds
from orgs.admin import MembershipInline
from orgs.admin_base.display import credits_text
from orgs.models import Membership

CREDITS = DecimalField(max_digits=20, decimal_places=6)


class MemberSpendInline(MembershipInline):
    """Members at a glance, each with what their turns cost this month against their cap."""

    fields = readonly_fields = ("user", "user_name", "role", "status", "joined_at", "cap_display", "spent_display")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        start, _ = period_bounds(timezone.now())
        counted = PayerSpend.objects.filter(
            organization=OuterRef("organization_id"),
            payer=PayerSpend.Payer.MEMBER,
            payer_id=OuterRef("user_id"),
            period_start=start,
        ).values("spent")
        usage = (
            LedgerEntry.objects.filter(
                organization=OuterRef("organization_id"),
                kind=LedgerEntry.Kind.USAGE,
                user_id=OuterRef("user_id"),
                created_at__gte=start,
            )
            .order_by()
            .values("user_id")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        # as the settlements counted it (one row), else (a member without a row this period) the ledger's sum
        spent = Coalesce(
            Subquery(counted, output_field=CREDITS),
            -Subquery(usage, output_field=CREDITS),
            Value(Decimal(0)),
            output_field=CREDITS,
        )
        # each row's own title names its organization: read with the row, not once per member
        return super().get_queryset(request).select_related("organization").annotate(spent_month=spent)

    @admin.display(description="Monthly cap")
    def cap_display(self, obj: Membership) -> str:
        return credits_text(obj.monthly_credit_limit) if obj.monthly_credit_limit is not None else "none"

    @admin.display(description="Spent this month")
    def spent_display(self, obj: Membership) -> str:
        spent = getattr(obj, "spent_month", Decimal(0))
        cap = obj.monthly_credit_limit
        if cap is None:
            return credits_text(spent)
        used = f" ({spent / cap:.0%} of the cap)" if cap > 0 else ""
        return f"{credits_text(spent)}{used}"
