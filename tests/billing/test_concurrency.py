"""The ledger never lies under concurrency: many threads, each with its own PostgreSQL
connection, reserve and settle against one org."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing import services
from billing.errors import BillingRefusal
from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from tests.conftest import make_org

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8
CALLS_PER_THREAD = 25


def test_balance_never_below_zero_and_ledger_sums_to_balance():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are what is under test")
    ModelRate.objects.create(
        model="race-model",
        provider="openai",
        display_name="Race",
        input_credits_per_million=Decimal("1000"),
        output_credits_per_million=Decimal("3000"),
        context_window=8000,
        max_output_tokens=1000,
    )
    org = make_org(name="Racers")
    services.adjust_credits(org=org, amount=Decimal("-80"), kind="adjustment", reason="leave 20 credits")
    # each call holds 100 in x 1000/1e6 + 300 out x 3000/1e6 = 1 credit; real costs run from 0 to 2.9 credits
    refused = []
    errors = []
    barrier = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(CALLS_PER_THREAD):
                try:
                    hold = services.reserve(org=org, model="race-model", input_tokens=100, max_output_tokens=300)
                except BillingRefusal as exc:
                    refused.append(exc.code)
                    continue
                # real usage: sometimes less, sometimes more than the hold (a low input estimate)
                services.settle(
                    reservation_id=hold.reservation_id,
                    input_tokens=rng.randint(0, 2000),
                    output_tokens=rng.randint(0, 300),
                )
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    account = CreditAccount.all_orgs.get(organization=org)
    entries = list(LedgerEntry.all_orgs.filter(organization=org))
    assert account.balance >= 0
    assert account.reserved == 0
    assert sum((e.amount for e in entries), Decimal(0)) == account.balance
    assert all(e.balance_after >= 0 for e in entries)
    assert Reservation.all_orgs.filter(organization=org, status="active").count() == 0
    usage = [e for e in entries if e.kind == "usage"]
    assert len(usage) + len(refused) == THREADS * CALLS_PER_THREAD
    assert set(refused) <= {"insufficient_credits"}
    assert refused, "the org should have run out of credits"
    # entries are written under the account lock: balance_after forms one unbroken chain
    running = Decimal(0)
    for entry in sorted(entries, key=lambda e: e.created_at):
        running += entry.amount
        assert entry.balance_after == running
    assert running == account.balance


def _run_together(count: int, work) -> list:
    """``work(i)`` in ``count`` threads released at once, each with its own connection."""
    results: list = [None] * count
    errors: list = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_concurrent_grants_with_one_idempotency_key_make_one_entry():
    from tests.conftest import client_for, make_user

    org = make_org(name="Granted")
    staff = make_user(is_staff=True)
    staff.is_superuser = True  # every permission, billing.manage_credits included
    staff.save(update_fields=["is_superuser"])
    before = CreditAccount.all_orgs.get(organization=org).balance

    def grant(_: int) -> tuple[int, dict]:
        response = client_for(staff, org).post(
            "/billing/credits/grant", {"amount": "7.25", "reason": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="g-1"
        )
        return response.status_code, response.json()

    answers = _run_together(THREADS, grant)
    assert {status for status, _ in answers} == {201}
    assert len({body["id"] for _, body in answers}) == 1  # every caller sees the one entry
    grants = LedgerEntry.all_orgs.filter(organization=org, kind="grant", description="Once")
    assert grants.count() == 1
    assert CreditAccount.all_orgs.get(organization=org).balance == before + Decimal("7.25")


def test_concurrent_spenders_never_pass_an_org_or_a_specialist_budget():
    """One credit a call, exactly. The org's budget is 10; one specialist's limit is 3, and six of
    the eight threads spend for it (30 attempts, enough to take the whole org budget were its limit
    not checked). The other specialist makes 7 attempts: with both checks every one of them fits
    (3 + 7 = 10), so however the threads interleave the limited specialist spends exactly 3, is
    refused for its own limit (never the org's), and the org spends exactly its budget."""
    import uuid

    ModelRate.objects.create(
        model="one-credit",
        provider="openai",
        display_name="One credit a token",
        input_credits_per_million=Decimal(1_000_000),
        output_credits_per_million=Decimal(0),
        context_window=8000,
    )
    org = make_org(name="Budgeted")
    org.monthly_budget = Decimal(10)
    org.save()
    limited, free = uuid.uuid4(), uuid.uuid4()
    limit = Decimal(3)
    # thread → (specialist, attempts): six limited threads of 5, two free ones of 4 and 3
    plan = [(limited, 5)] * 6 + [(free, 4), (free, 3)]
    assert len(plan) == THREADS

    def spend(index: int) -> list[tuple[uuid.UUID, str]]:
        outcomes = []
        specialist, attempts = plan[index]
        for _ in range(attempts):
            try:
                hold = services.reserve(
                    org=org,
                    model="one-credit",
                    input_tokens=1,
                    max_output_tokens=0,
                    specialist_id=specialist,
                    specialist_limit=limit if specialist == limited else None,
                )
            except BillingRefusal as exc:
                outcomes.append((specialist, f"{exc.code}:{exc.extra.get('scope')}"))
                continue
            services.settle(reservation_id=hold.reservation_id, input_tokens=1, output_tokens=0)
            outcomes.append((specialist, "spent"))
        return outcomes

    outcomes = [outcome for thread in _run_together(THREADS, spend) for outcome in thread]
    limited_outcomes = [outcome for specialist, outcome in outcomes if specialist == limited]
    free_outcomes = [outcome for specialist, outcome in outcomes if specialist == free]
    account = CreditAccount.all_orgs.get(organization=org)
    usage = LedgerEntry.all_orgs.filter(organization=org, kind="usage")
    limited_spent = -sum((entry.amount for entry in usage.filter(specialist_id=limited)), Decimal(0))
    assert len(limited_outcomes) == 30
    assert limited_outcomes.count("spent") == 3
    assert limited_spent == limit  # to the credit: never a fraction over
    # refused by its own limit, or (once the other specialist has spent the rest) by the org's
    assert set(limited_outcomes) - {"spent"} <= {"budget_exhausted:specialist_budget", "budget_exhausted:org_budget"}
    assert free_outcomes == ["spent"] * 7  # the limit of one specialist takes nothing from another
    assert -sum((entry.amount for entry in usage.filter(specialist_id=free)), Decimal(0)) == Decimal(7)
    assert account.period_spent == Decimal(10) == org.monthly_budget
    assert account.reserved == 0
    assert usage.count() == 10
    assert not Reservation.all_orgs.filter(organization=org, status="active").exists()
    assert sum((entry.amount for entry in LedgerEntry.all_orgs.filter(organization=org)), Decimal(0)) == account.balance
