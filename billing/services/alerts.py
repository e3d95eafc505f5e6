"""Budget and low-balance alerts, each raised once per period and emailed to the billing email."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing import webhook_events
from billing.models import (
    BudgetAlert,
    CreditAccount,
)
from core import db
from core.credits import credit_str, period_bounds
from core.mail import send_on_commit
from orgs.models import Organization

logger = logging.getLogger(__name__)

BUDGET_THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))
ALERTED_ONCE = (BudgetAlert.Kind.BUDGET_THRESHOLD, BudgetAlert.Kind.LOW_BALANCE)  # once per period each

# The alerts of this process known to be raised (committed): a settlement past a threshold does not
# try them again. The database's unique constraint is what keeps each once per period.
_known_raised: set[tuple[uuid.UUID, str, Decimal | None, datetime]] = set()
_KNOWN_RAISED_MAX = 100_000


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """What an org's alerts are raised by and sent to."""

    org_id: uuid.UUID
    name: str
    billing_email: str
    monthly_budget: Decimal | None
    low_balance_threshold: Decimal | None

    @classmethod
    def of(cls, org: Organization) -> AlertSettings:
        return cls(org.pk, org.name, org.billing_email, org.monthly_budget, org.low_balance_threshold)


@cache
def _insert_sql() -> str:
    table = BudgetAlert._meta.db_table
    once = ", ".join(f"'{kind.value}'" for kind in ALERTED_ONCE)
    return (
        f"INSERT INTO {table} (id, organization_id, kind, threshold, period_start, message, created_at, "  # noqa: S608
        "acknowledged_at, acknowledged_by_id) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL) "
        f"ON CONFLICT (organization_id, kind, threshold, period_start) WHERE kind IN ({once}) DO NOTHING RETURNING id"
    )


def raise_alert(
    *, org: Organization, kind: str, threshold: Decimal | None, period_start: datetime, message: str
) -> bool:
    """Creates the alert (once per period for budget and low-balance kinds); emails after commit."""
    return _raise(AlertSettings.of(org), kind=kind, threshold=threshold, period_start=period_start, message=message)


def _raise(
    settings: AlertSettings, *, kind: str, threshold: Decimal | None, period_start: datetime, message: str
) -> bool:
    """One statement: the alert, unless this period has it already (no savepoint: a conflict is no error)."""
    key = (settings.org_id, kind, threshold, period_start)
    if key in _known_raised:
        return False
    alert = BudgetAlert(
        id=uuid.uuid4(),
        organization_id=settings.org_id,
        kind=kind,
        threshold=threshold,
        period_start=period_start,
        message=message[:500],
        created_at=timezone.now(),
    )
    params: list[db.SqlValue] = [
        alert.pk,
        alert.organization_id,
        kind,
        threshold,
        period_start,
        alert.message,
        alert.created_at,
    ]
    if not db.rows(_insert_sql(), params, scope=db.InOrg(alert.organization_id)):  # raised already this period
        if kind in ALERTED_ONCE:
            _remember(key)
        return False
    alert._state.adding = False
    if kind in ALERTED_ONCE:
        transaction.on_commit(lambda: _remember(key))
    webhook_events.alert_raised(alert)
    if settings.billing_email:
        send_on_commit(f"LeanCore: {message}", message, [settings.billing_email])
    return True


def _remember(key: tuple[uuid.UUID, str, Decimal | None, datetime]) -> None:
    if len(_known_raised) >= _KNOWN_RAISED_MAX:
        _known_raised.clear()
    _known_raised.add(key)


def evaluate_alerts(*, org: Organization, account: CreditAccount) -> list[str]:
    """Raises the budget (50/80/100 %) and low-balance alerts, each once per period."""
    return raise_due_alerts(AlertSettings.of(org), balance=account.balance, period_spent=account.period_spent)


def raise_due_alerts(settings: AlertSettings, *, balance: Decimal, period_spent: Decimal) -> list[str]:
    """The alerts an org's figures after a change call for, each raised once per period: no statement
    while none is due or each due one is known raised."""
    start, _ = period_bounds(timezone.now())
    raised: list[str] = []
    budget = settings.monthly_budget
    if budget is not None and budget > 0:
        for threshold in BUDGET_THRESHOLDS:
            if period_spent * 100 >= threshold * budget and _raise(
                settings,
                kind=BudgetAlert.Kind.BUDGET_THRESHOLD,
                threshold=threshold,
                period_start=start,
                message=(
                    f"{settings.name} has used {threshold}% of its monthly budget "
                    f"({credit_str(period_spent)} of {credit_str(budget)} credits)."
                ),
            ):
                raised.append(f"budget_{threshold}")
    low = settings.low_balance_threshold
    if (
        low is not None
        and balance < low
        and _raise(
            settings,
            kind=BudgetAlert.Kind.LOW_BALANCE,
            threshold=low,
            period_start=start,
            message=(
                f"{settings.name}'s credit balance is low: {credit_str(balance)} credits (threshold {credit_str(low)})."
            ),
        )
    ):
        raised.append("low_balance")
    return raised


def no_alert_due_sql(*, figures: str, period_start: str) -> str:
    """SQL that is true when ``raise_due_alerts`` would raise nothing for the figures of ``figures``
    after it charges ``charge`` (its columns ``organization_id``, ``balance``, ``period_spent``,
    ``charge``, ``monthly_budget``, ``low_balance_threshold``): every threshold reached is raised
    already in the period starting at ``period_start`` (SQL), or none is reached."""
    table = BudgetAlert._meta.db_table
    thresholds = ", ".join(f"({threshold})" for threshold in BUDGET_THRESHOLDS)
    raised = (
        f"SELECT 1 FROM {table} x WHERE x.organization_id = {figures}.organization_id AND x.kind = '{{kind}}' "  # noqa: S608
        f"AND x.threshold = {{threshold}} AND x.period_start = {period_start}"
    )
    budget_raised = raised.format(kind=BudgetAlert.Kind.BUDGET_THRESHOLD.value, threshold="t.threshold")
    low_raised = raised.format(kind=BudgetAlert.Kind.LOW_BALANCE.value, threshold=f"{figures}.low_balance_threshold")
    return (
        f"({figures}.monthly_budget IS NULL OR {figures}.monthly_budget <= 0 OR NOT EXISTS ("  # noqa: S608
        f"SELECT 1 FROM (VALUES {thresholds}) t(threshold) WHERE ({figures}.period_spent + {figures}.charge) * 100 "
        f">= t.threshold * {figures}.monthly_budget AND NOT EXISTS ({budget_raised}))) "
        f"AND ({figures}.low_balance_threshold IS NULL OR {figures}.balance - {figures}.charge "
        f">= {figures}.low_balance_threshold OR EXISTS ({low_raised}))"
    )


def acknowledge_alerts(*, org: Organization, user: User | None, alert_ids: list[uuid.UUID] | None, all_: bool) -> int:
    queryset = BudgetAlert.objects.for_org(org).filter(acknowledged_at__isnull=True)
    if not all_:
        queryset = queryset.filter(pk__in=alert_ids or [])
    return queryset.update(acknowledged_at=timezone.now(), acknowledged_by=user)
