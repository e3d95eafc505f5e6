"""Billing reads. Aggregates are computed by the database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Max, QuerySet, Sum
from django.utils import timezone

from billing.models import BudgetAlert, Circuit, CreditAccount, CreditPackage, LedgerEntry, ModelRate
from billing.services import open_account
from core.credits import period_bounds, quantize_credits
from core.lookups import AnyOf
from orgs.models import Organization

BURN_WINDOW_DAYS = 7


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    reserved: Decimal
    available: Decimal
    monthly_budget: Decimal | None
    spent_this_period: Decimal
    period_start: datetime
    period_end: datetime
    low_balance_threshold: Decimal | None


def account_of(org: Organization) -> CreditAccount:
    account = CreditAccount.objects.for_org(org).first()
    if account is None:
        account = open_account(org=org)
    return account


def _spent_this_period(account: CreditAccount, start: datetime) -> Decimal:
    return account.period_spent if account.period_start >= start else Decimal(0)


def balance(*, org: Organization) -> Balance:
    account = account_of(org)
    start, end = period_bounds(timezone.now())
    return Balance(
        balance=account.balance,
        reserved=account.reserved,
        available=account.balance - account.reserved,
        monthly_budget=org.monthly_budget,
        spent_this_period=_spent_this_period(account, start),
        period_start=start,
        period_end=end,
        low_balance_threshold=org.low_balance_threshold,
    )


def ledger(*, org: Organization) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.for_org(org).order_by("-created_at")


def all_rates() -> QuerySet[ModelRate]:
    return ModelRate.objects.order_by("model")


def packages() -> QuerySet[CreditPackage]:
    return CreditPackage.objects.filter(active=True).order_by("price_cents")


def alerts(*, org: Organization) -> QuerySet[BudgetAlert]:
    return BudgetAlert.objects.for_org(org).order_by("-created_at")


def circuit(*, org: Organization) -> Circuit:
    return Circuit.objects.select_related("opened_by").get_or_create(organization=org)[0]


@dataclass(frozen=True, slots=True)
class SpecialistSpend:
    specialist_id: uuid.UUID
    name: str
    credits: Decimal


@dataclass(frozen=True, slots=True)
class ModelSpend:
    model: str
    credits: Decimal


@dataclass(frozen=True, slots=True)
class Capacity:
    balance: Decimal
    available: Decimal
    burn_rate_per_day: Decimal
    runway_days: Decimal | None  # None when nothing burns
    monthly_budget: Decimal | None
    spent_this_period: Decimal
    budget_used_percent: Decimal | None  # None without a budget
    by_specialist: tuple[SpecialistSpend, ...]
    by_model: tuple[ModelSpend, ...]


def capacity(*, org: Organization, specialist_ids: frozenset[uuid.UUID] | None = None) -> Capacity:
    """Burn rate over the last 7 days, runway, and this period's spend by specialist and by model
    (for a caller limited to some specialists, ``specialist_ids``: theirs only)."""
    now = timezone.now()
    info = balance(org=org)
    usage = LedgerEntry.objects.for_org(org).filter(kind=LedgerEntry.Kind.USAGE)
    burned = -(
        usage.filter(created_at__gte=now - timedelta(days=BURN_WINDOW_DAYS)).aggregate(t=Sum("amount"))["t"] or 0
    )
    burn_rate = quantize_credits(Decimal(burned) / BURN_WINDOW_DAYS)
    runway = quantize_credits(info.available / burn_rate).quantize(Decimal("0.1")) if burn_rate > 0 else None
    period = usage.filter(created_at__gte=info.period_start)
    if specialist_ids is not None:
        period = period.filter(specialist_id__in=specialist_ids)
    by_specialist = (
        period.filter(specialist_id__isnull=False)
        .values("specialist_id")
        .annotate(credits=-Sum("amount"), specialist_name=Max("specialist_name"))
        .order_by("-credits", "specialist_id")
    )
    by_model = period.exclude(model="").values("model").annotate(credits=-Sum("amount")).order_by("-credits", "model")
    budget_used = (
        quantize_credits(info.spent_this_period * 100 / info.monthly_budget).quantize(Decimal("0.01"))
        if info.monthly_budget
        else None
    )
    return Capacity(
        balance=info.balance,
        available=info.available,
        burn_rate_per_day=burn_rate,
        runway_days=runway,
        monthly_budget=info.monthly_budget,
        spent_this_period=info.spent_this_period,
        budget_used_percent=budget_used,
        by_specialist=tuple(
            SpecialistSpend(specialist_id=specialist_id, name=row["specialist_name"], credits=row["credits"])
            for row in by_specialist
            if (specialist_id := row["specialist_id"]) is not None  # every row (filtered above): for the type
        ),
        by_model=tuple(ModelSpend(model=row["model"], credits=row["credits"]) for row in by_model),
    )


@dataclass(frozen=True)
class SpecialistUsage:
    credits: Decimal
    messages: int


def specialist_usage_this_period(*, org_id: uuid.UUID, specialist_id: uuid.UUID) -> SpecialistUsage:
    """What one specialist's work cost this period, and how many of its replies were billed, from
    the ledger in one aggregate."""
    start, _ = period_bounds(timezone.now())
    totals = LedgerEntry.objects.filter(
        organization_id=org_id, kind=LedgerEntry.Kind.USAGE, specialist_id=specialist_id, created_at__gte=start
    ).aggregate(total=Sum("amount"), messages=Count("message_id", distinct=True))
    return SpecialistUsage(credits=-(totals["total"] or Decimal(0)), messages=totals["messages"])


def _usage_this_period_by(column: str, *, org_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """What the turns of each payer ``column = id`` (a member, an API key) cost this period (their
    usage), in one grouped query that the payer's index of usage by time serves; none is 0."""
    start, _ = period_bounds(timezone.now())
    totals = (
        LedgerEntry.objects.filter(organization_id=org_id, kind=LedgerEntry.Kind.USAGE, created_at__gte=start)
        .filter(AnyOf(F(column), ids))
        .values_list(column)
        .annotate(total=Sum("amount"))
        .order_by()
    )
    spent = dict.fromkeys(ids, Decimal(0))
    spent.update({payer_id: quantize_credits(-total) for payer_id, total in totals})
    return spent


def members_spent_this_period(*, org_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """What each of these members' turns cost this period; a member with no usage is 0."""
    return _usage_this_period_by("user_id", org_id=org_id, ids=user_ids)


def keys_spent_this_period(*, org_id: uuid.UUID, key_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """What the turns started with each of these API keys cost this period; a key with no usage is 0."""
    return _usage_this_period_by("api_key_id", org_id=org_id, ids=key_ids)
