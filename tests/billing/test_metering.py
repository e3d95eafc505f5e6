"""The metering service: exact arithmetic, holds, the 402 contract, settling."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from billing import services
from billing.errors import BudgetExhaustedError, CircuitOpenError, InsufficientCreditsError, UnknownModelError
from billing.models import BudgetAlert, CreditAccount, LedgerEntry, ModelRate, Reservation
from core.credits import period_bounds, token_cost

pytestmark = pytest.mark.django_db


@pytest.fixture
def rate(db) -> ModelRate:
    # 3 credits per million in, 15 per million out
    return ModelRate.objects.create(
        model="test-model",
        provider="openai",
        display_name="Test",
        input_credits_per_million=Decimal("3"),
        output_credits_per_million=Decimal("15"),
        context_window=8000,
        max_output_tokens=1000,
    )


def account(org) -> CreditAccount:
    return CreditAccount.all_orgs.get(organization=org)


def ledger_sum(org) -> Decimal:
    return sum((e.amount for e in LedgerEntry.all_orgs.filter(organization=org)), Decimal(0))


@pytest.mark.parametrize(
    ("inp", "out", "rin", "rout", "expected"),
    [
        (1000, 500, "3", "15", "0.010500"),
        (1, 0, "0.5", "0", "0.000001"),  # 0.0000005 rounds half up
        (1, 0, "0.4", "0", "0.000000"),
        (333, 333, "1", "2", "0.000999"),
        (1_000_000, 1_000_000, "2.5", "10", "12.500000"),
        (7, 3, "0.15", "0.6", "0.000003"),  # 0.00000105 + 0.0000018 = 0.00000285 → 0.000003
    ],
)
def test_token_cost_rounds_half_up_to_6_decimals(inp, out, rin, rout, expected):
    assert (
        str(
            token_cost(
                input_tokens=inp, output_tokens=out, input_per_million=Decimal(rin), output_per_million=Decimal(rout)
            )
        )
        == expected
    )


def test_period_is_the_utc_calendar_month():
    from datetime import UTC, datetime

    start, end = period_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00")


def test_reserve_holds_worst_case_and_settle_charges_real_usage(org, rate):
    hold = services.reserve(org=org, model="test-model", input_tokens=1000, max_output_tokens=1000)
    assert hold.amount == Decimal("0.018000")  # 1000×3/1e6 + 1000×15/1e6
    acc = account(org)
    assert acc.reserved == Decimal("0.018000")
    assert acc.available == Decimal("99.982000")
    charge = services.settle(reservation_id=hold.reservation_id, input_tokens=1200, output_tokens=100)
    assert charge.credits == Decimal("0.005100")
    acc = account(org)
    assert acc.reserved == 0
    assert acc.balance == Decimal("99.994900")
    assert acc.period_spent == Decimal("0.005100")
    entry = LedgerEntry.all_orgs.get(organization=org, kind="usage")
    assert entry.amount == Decimal("-0.005100")
    assert entry.balance_after == acc.balance
    assert (entry.input_tokens, entry.output_tokens, entry.model) == (1200, 100, "test-model")
    assert ledger_sum(org) == acc.balance


def test_settling_twice_charges_once(org, rate):
    hold = services.reserve(org=org, model="test-model", input_tokens=10, max_output_tokens=10)
    services.settle(reservation_id=hold.reservation_id, input_tokens=10, output_tokens=10)
    services.settle(reservation_id=hold.reservation_id, input_tokens=10, output_tokens=10)
    assert LedgerEntry.all_orgs.filter(organization=org, kind="usage").count() == 1


def test_cost_above_hold_is_taken_from_available_but_never_below_zero(org, rate):
    services.adjust_credits(org=org, amount=Decimal("-99.99"), kind="adjustment", reason="test")
    assert account(org).balance == Decimal("0.010000")
    hold = services.reserve(org=org, model="test-model", input_tokens=10, max_output_tokens=100)
    assert hold.amount == Decimal("0.001530")
    # the input estimate was far too low: the real cost is 0.3 credits
    charge = services.settle(reservation_id=hold.reservation_id, input_tokens=100_000, output_tokens=0)
    assert charge.credits == Decimal("0.010000")
    acc = account(org)
    assert acc.balance == 0
    assert acc.reserved == 0
    assert ledger_sum(org) == 0


def test_overrun_never_eats_other_holds(org, rate):
    services.adjust_credits(org=org, amount=Decimal("-99.96"), kind="adjustment", reason="test")
    first = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)  # 0.015
    second = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)  # 0.015
    charge = services.settle(reservation_id=first.reservation_id, input_tokens=1_000_000, output_tokens=0)
    assert charge.credits == Decimal("0.025000")  # 0.04 − 0.015 still held by the second call
    services.settle(reservation_id=second.reservation_id, input_tokens=0, output_tokens=1000)
    acc = account(org)
    assert acc.balance == Decimal("0")
    assert ledger_sum(org) == acc.balance


def test_insufficient_credits_body(org, rate):
    with pytest.raises(InsufficientCreditsError) as info:
        services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=10_000_000)
    err = info.value
    assert err.status == 402
    assert err.extra == {"scope": "org_balance", "required": "150.000000", "available": "100.000000"}
    assert account(org).reserved == 0
    assert not Reservation.all_orgs.exists()


def test_circuit_comes_first(org, rate):
    services.set_circuit(org=org, actor=None, state="open", reason="Runaway agent")
    with pytest.raises(CircuitOpenError) as info:
        services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=10_000_000)
    assert info.value.extra["scope"] == "circuit"
    assert info.value.extra["reason"] == "Runaway agent"
    assert info.value.extra["openedAt"].endswith("Z")


def test_org_budget_counts_spend_and_open_holds(clock, org, rate):
    org.monthly_budget = Decimal("0.02")
    org.save()
    first = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)  # 0.015
    second = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)  # 0.015 → 0.03
    with pytest.raises(BudgetExhaustedError) as info:
        services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1)
    _, end = period_bounds(timezone.now())
    assert info.value.extra == {
        "scope": "org_budget",
        "limit": "0.020000",
        "spent": "0.030000",
        "resetAt": end.isoformat().replace("+00:00", "Z"),
    }
    services.release(reservation_id=first.reservation_id)
    services.release(reservation_id=second.reservation_id)
    services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1)


def test_specialist_limit(clock, org, rate):
    """On the test's own clock (mid-June 2026, ticking a microsecond a reading): the spend, the limit
    and the period it resets with never depend on today's date."""
    specialist = uuid.uuid4()
    hold = services.reserve(
        org=org,
        model="test-model",
        input_tokens=0,
        max_output_tokens=1000,
        specialist_id=specialist,
        specialist_limit=Decimal("0.01"),
    )
    services.settle(reservation_id=hold.reservation_id, input_tokens=0, output_tokens=1000)  # 0.015 spent
    with pytest.raises(BudgetExhaustedError) as info:
        services.reserve(
            org=org,
            model="test-model",
            input_tokens=0,
            max_output_tokens=1,
            specialist_id=specialist,
            specialist_limit=Decimal("0.01"),
        )
    assert info.value.extra["scope"] == "specialist_budget"
    assert info.value.extra["spent"] == "0.015000"
    assert info.value.extra["resetAt"] == "2026-07-01T00:00:00Z"  # the period of the test's clock
    # another specialist and the org are not affected
    services.reserve(
        org=org,
        model="test-model",
        input_tokens=0,
        max_output_tokens=1,
        specialist_id=uuid.uuid4(),
        specialist_limit=Decimal("0.01"),
    )


def test_refusal_order_balance_before_budget(org, rate):
    org.monthly_budget = Decimal("0")
    org.save()
    with pytest.raises(InsufficientCreditsError):
        services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=10_000_000)
    with pytest.raises(BudgetExhaustedError):
        services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1)


def test_unknown_or_inactive_model(org, rate):
    rate.active = False
    rate.save()
    with pytest.raises(UnknownModelError):
        services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1)


def test_release_and_stale_sweep(org, rate):
    fresh = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)
    stale = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)
    Reservation.all_orgs.filter(pk=stale.reservation_id).update(created_at=timezone.now() - timedelta(hours=1))
    assert services.release_stale_reservations() == 1
    assert services.release_stale_reservations() == 0
    assert account(org).reserved == fresh.amount
    assert Reservation.all_orgs.get(pk=stale.reservation_id).status == "released"
    # a late settle of a released hold (the call went on after all) charges its real cost, once
    services.settle(reservation_id=stale.reservation_id, input_tokens=5, output_tokens=5)
    services.settle(reservation_id=stale.reservation_id, input_tokens=5, output_tokens=5)
    (entry,) = LedgerEntry.all_orgs.filter(kind="usage")
    assert entry.amount == -token_cost(
        input_tokens=5, output_tokens=5, input_per_million=Decimal(3), output_per_million=Decimal(15)
    )
    assert account(org).reserved == fresh.amount
    assert ledger_sum(org) == account(org).balance


def test_budget_alerts_once_per_period_and_emailed(clock, org, rate, django_capture_on_commit_callbacks):
    """On the test's own clock (mid-June 2026): every alert belongs to the one period, whatever today is."""
    org.monthly_budget = Decimal("0.03")
    org.billing_email = "ap@acme.test"
    org.save()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            hold = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)
            services.settle(reservation_id=hold.reservation_id, input_tokens=0, output_tokens=1000)
        # 0.015 → 50 %; 0.030 → 80 % and 100 %; evaluating again raises nothing new
        services.evaluate_alerts(org=org, account=account(org))
    alerts = BudgetAlert.all_orgs.filter(organization=org, kind="budget_threshold").order_by("threshold")
    assert [a.threshold for a in alerts] == [Decimal(50), Decimal(80), Decimal(100)]
    assert {a.period_start for a in alerts} == {datetime(2026, 6, 1, tzinfo=UTC)}
    assert len([m for m in mail.outbox if m.to == ["ap@acme.test"]]) == 3


def test_low_balance_alert_once(org, rate, django_capture_on_commit_callbacks):
    org.low_balance_threshold = Decimal("99.99")
    org.save()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            hold = services.reserve(org=org, model="test-model", input_tokens=0, max_output_tokens=1000)
            services.settle(reservation_id=hold.reservation_id, input_tokens=0, output_tokens=1000)
    assert BudgetAlert.all_orgs.filter(organization=org, kind="low_balance").count() == 1


def test_grant_adjust_refund(org):
    services.grant_credits(org=org, amount=Decimal("5.5"), reason="bonus")
    services.adjust_credits(org=org, amount=Decimal("2"), kind="refund", reason="failed turn")
    services.adjust_credits(org=org, amount=Decimal("-7.5"), kind="adjustment", reason="correction")
    assert account(org).balance == Decimal("100")
    assert ledger_sum(org) == Decimal("100")
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        services.adjust_credits(org=org, amount=Decimal("-100.000001"), kind="adjustment", reason="too much")
    with pytest.raises(ValidationFailed):
        services.grant_credits(org=org, amount=Decimal("0"), reason="nothing")


def test_balance_and_usage_sign_are_check_constraints_in_the_database(org):
    """CHECK constraints, not the services, refuse a negative balance and a positive usage entry."""
    from django.db import IntegrityError, transaction

    entry = LedgerEntry.all_orgs.filter(organization=org).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.all_orgs.filter(organization=org).update(balance=Decimal("-1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.all_orgs.filter(pk=entry.pk).update(kind="usage")  # a positive usage is refused


def test_ledger_rows_cannot_be_changed_or_deleted_by_anyone(org):
    """Not a convention of the services: the database refuses an UPDATE or DELETE of a ledger row,
    from the ORM and from plain SQL alike, and the row stays as it was."""
    from django.db import IntegrityError, connection, transaction

    entry = LedgerEntry.all_orgs.filter(organization=org).first()
    before = list(LedgerEntry.all_orgs.values_list("id", "amount", "description"))
    assert entry is not None
    attempts = [
        lambda: LedgerEntry.all_orgs.filter(pk=entry.pk).update(description="rewritten"),
        lambda: LedgerEntry.all_orgs.filter(pk=entry.pk).delete(),
        lambda: connection.cursor().execute("UPDATE billing_ledgerentry SET amount = amount * 2"),
        lambda: connection.cursor().execute("DELETE FROM billing_ledgerentry"),
    ]
    for attempt in attempts:
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            attempt()
    assert list(LedgerEntry.all_orgs.values_list("id", "amount", "description")) == before
