"""An organization's usage per UTC day and model, for pages that show weeks of it (the admin's
organization page): the days that are over read from ``DailyUsage``, each counted once from the
ledger the first time it is asked for; the days still open summed from the ledger (a few hours of
entries, through the index of the org's entries by kind and time).

A day is over once it ended ``COUNTED_AFTER`` ago: a usage entry is dated when its settlement writes
it, in a statement of its own, and the ledger is append-only, so nothing is added to a day that
ended an hour ago and its count never changes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from billing.models import DailyUsage, LedgerEntry
from core.credits import quantize_credits
from orgs.models import Organization

COUNTED_AFTER = timedelta(hours=1)

ByDay = dict[date, dict[str, Decimal]]  # day -> model ("" for none) -> credits used (positive)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def first_open_day(now: datetime) -> date:
    """The first day that is not over: every day before it has all its entries."""
    return (now - COUNTED_AFTER).astimezone(UTC).date()


def usage_by_day(org: Organization, *, first: date, now: datetime) -> ByDay:
    """Credits used per day and model from ``first`` through today (UTC); days without usage absent."""
    open_from = max(first, first_open_day(now))
    by_day = _counted(org, first=first, end=open_from)
    for day, models in _summed(org, Q(created_at__gte=midnight(open_from))).items():
        by_day[day] = models
    return by_day


def used_between(org: Organization, *, start: datetime, end: datetime) -> Decimal:
    """Credits used from ``start`` to ``end`` (positive), summed from the ledger: for parts of days."""
    total = (
        LedgerEntry.objects.for_org(org)
        .filter(kind=LedgerEntry.Kind.USAGE, created_at__gte=start, created_at__lt=end)
        .aggregate(total=Sum("amount"))["total"]
    )
    return quantize_credits(-(total or Decimal(0)))


def _counted(org: Organization, *, first: date, end: date) -> ByDay:
    """The days from ``first`` to ``end`` (excluded), all over: from their counts, the days not counted
    yet counted now (one grouped read of their entries, one insert; a page counting them at the same
    time inserts the same rows, which are then kept once)."""
    if first >= end:
        return {}
    rows = DailyUsage.objects.for_org(org).filter(day__gte=first, day__lt=end)
    by_day: ByDay = defaultdict(dict)
    counted: set[date] = set()
    for day, model, credits, entries in rows.values_list("day", "model", "credits", "entries"):
        counted.add(day)
        if entries:  # not the row of a day without usage
            by_day[day][model] = credits
    missing = [day for n in range((end - first).days) if (day := first + timedelta(days=n)) not in counted]
    if missing:
        by_day.update({day: models for day, models in _count(org, missing).items() if models})
    return dict(by_day)


def _count(org: Organization, days: list[date]) -> ByDay:
    """Counts ``days`` (over, not counted yet) from the ledger and keeps their counts; returns them."""
    ranges = Q()
    for start, end in _spans(days):
        ranges |= Q(created_at__gte=midnight(start), created_at__lt=midnight(end))
    groups = _grouped(org, ranges)
    by_day: ByDay = {day: {} for day in days}
    rows = []
    for day, model, used, entries in groups:
        by_day[day][model] = used
        rows.append(DailyUsage(organization=org, day=day, model=model, credits=used, entries=entries))
    rows += [DailyUsage(organization=org, day=day, model="", entries=0) for day in days if not by_day[day]]
    rows.sort(key=lambda row: (row.day, row.model))  # two first views at once insert in one order: no deadlock
    with transaction.atomic():
        DailyUsage.objects.bulk_create(rows, ignore_conflicts=True)
    return by_day


def _spans(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days: [start, end) each."""
    spans: list[tuple[date, date]] = []
    for day in days:
        if spans and spans[-1][1] == day:
            spans[-1] = (spans[-1][0], day + timedelta(days=1))
        else:
            spans.append((day, day + timedelta(days=1)))
    return spans


def _grouped(org: Organization, when: Q) -> list[tuple[date, str, Decimal, int]]:
    """The org's usage entries matching ``when``, per UTC day and model: credits used and entries."""
    rows = (
        LedgerEntry.objects.for_org(org)
        .filter(when, kind=LedgerEntry.Kind.USAGE)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values_list("day", "model")
        .annotate(used=Sum("amount"), entries=Count("id"))
        .order_by()
    )
    return [(day, model, quantize_credits(-used), entries) for day, model, used, entries in rows]


def _summed(org: Organization, when: Q) -> ByDay:
    by_day: ByDay = defaultdict(dict)
    for day, model, used, _ in _grouped(org, when):
        by_day[day][model] = used
    return dict(by_day)
