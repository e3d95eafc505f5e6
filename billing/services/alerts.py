"""Budget and low-balance alerts, each raised once per period and emailed to the billing email."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from billing import webhook_events
from billing.models import (
    BudgetAlert,
    CreditAccount,
)
from core.credits import credit_str, period_bounds
from core.mail import send_on_commit
from orgs.models import Organization

logger = logging.getLogger(__name__)

BUDGET_THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))


def raise_alert(
    *, org: Organization, kind: str, threshold: Decimal | None, period_start: datetime, message: str
) -> bool:
    """Creates the alert (once per period for budget and low-balance kinds); emails after commit."""
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                organization=org, kind=kind, threshold=threshold, period_start=period_start, message=message
            )
    except IntegrityError:  # already raised this period
        return False
    webhook_events.alert_raised(alert)
    if org.billing_email:
        recipient = org.billing_email
        send_on_commit(f"LeanCore: {message}", message, [recipient])
    return True


def evaluate_alerts(*, org: Organization, account: CreditAccount) -> list[str]:
    """Raises the budget (50/80/100 %) and low-balance alerts, each once per period."""
    start, _ = period_bounds(timezone.now())
    raised: list[str] = []
    if org.monthly_budget is not None and org.monthly_budget > 0:
        used = account.period_spent * 100 / org.monthly_budget
        for threshold in BUDGET_THRESHOLDS:
            if used >= threshold and raise_alert(
                org=org,
                kind=BudgetAlert.Kind.BUDGET_THRESHOLD,
                threshold=threshold,
                period_start=start,
                message=(
                    f"{org.name} has used {threshold}% of its monthly budget "
                    f"({credit_str(account.period_spent)} of {credit_str(org.monthly_budget)} credits)."
                ),
            ):
                raised.append(f"budget_{threshold}")
    if (
        org.low_balance_threshold is not None
        and account.balance < org.low_balance_threshold
        and raise_alert(
            org=org,
            kind=BudgetAlert.Kind.LOW_BALANCE,
            threshold=org.low_balance_threshold,
            period_start=start,
            message=(
                f"{org.name}'s credit balance is low: {credit_str(account.balance)} credits "
                f"(threshold {credit_str(org.low_balance_threshold)})."
            ),
        )
    ):
        raised.append("low_balance")
    return raised


def acknowledge_alerts(*, org: Organization, user: User | None, alert_ids: list[uuid.UUID] | None, all_: bool) -> int:
    queryset = BudgetAlert.objects.for_org(org).filter(acknowledged_at__isnull=True)
    if not all_:
        queryset = queryset.filter(pk__in=alert_ids or [])
    return queryset.update(acknowledged_at=timezone.now(), acknowledged_by=user)
