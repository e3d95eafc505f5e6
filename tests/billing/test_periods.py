"""Budget periods are calendar months (UTC): at the turn of a month the period's spend starts again
from zero and the 50/80/100 % budget alerts fire again, once each, for the new period. The clock is
the test's own (no dependency on today's date)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing import services
from billing.errors import BudgetExhaustedError
from billing.models import BudgetAlert, CreditAccount, ModelRate

MARCH_END = datetime(2026, 3, 31, 23, 59, 0, tzinfo=UTC)
APRIL_START = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)


@pytest.fixture
def clock(clock):
    clock["at"] = MARCH_END
    return clock


@pytest.fixture
def per_token(db):
    """One credit per input token, outputs free: a call's cost is its input tokens, exactly."""
    return ModelRate.objects.create(
        model="per-token",
        provider="openai",
        display_name="Per token",
        input_credits_per_million=Decimal(1_000_000),
        output_credits_per_million=Decimal(0),
        context_window=100_000,
    )


def _spend(org, credits: int) -> None:
    hold = services.reserve(org=org, model="per-token", input_tokens=credits, max_output_tokens=0)
    services.settle(reservation_id=hold.reservation_id, input_tokens=credits, output_tokens=0)


def _budget_alerts(org) -> list[tuple[str, datetime]]:
    alerts = BudgetAlert.all_orgs.filter(organization=org, kind=BudgetAlert.Kind.BUDGET_THRESHOLD)
    return sorted((str(int(alert.threshold)), alert.period_start) for alert in alerts)


def test_spend_and_budget_alerts_start_again_in_a_new_period(clock, org, per_token):  # the org opens in March
    org.monthly_budget = Decimal(10)
    org.save()
    opening = CreditAccount.all_orgs.get(organization=org).balance
    services.grant_credits(org=org, amount=Decimal(1000), reason="plenty")
    for credits in (5, 3, 2, 0):  # 50 %, 80 %, 100 %, and once more at 100 %: no second alert
        if credits:
            _spend(org, credits)
        else:
            services.evaluate_alerts(org=org, account=CreditAccount.all_orgs.get(organization=org))
    march = datetime(2026, 3, 1, tzinfo=UTC)
    assert _budget_alerts(org) == [("100", march), ("50", march), ("80", march)]
    with pytest.raises(BudgetExhaustedError):
        _spend(org, 1)  # the month's budget is spent

    clock["at"] = APRIL_START
    _spend(org, 4)  # April: the spend starts from zero, so this is allowed
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.period_start == datetime(2026, 4, 1, tzinfo=UTC)
    assert account.period_spent == Decimal(4)
    assert _budget_alerts(org) == [("100", march), ("50", march), ("80", march)]  # 40 %: none yet
    _spend(org, 1)
    _spend(org, 3)
    _spend(org, 2)
    april = datetime(2026, 4, 1, tzinfo=UTC)
    assert _budget_alerts(org) == sorted(
        [("100", march), ("50", march), ("80", march), ("100", april), ("50", april), ("80", april)]
    )
    assert CreditAccount.all_orgs.get(organization=org).balance == opening + 1000 - 20  # every credit spent, once
