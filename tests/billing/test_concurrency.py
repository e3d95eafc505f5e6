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
    account = CreditAccount.objects.get(organization=org)
    entries = list(LedgerEntry.objects.filter(organization=org))
    assert account.balance >= 0
    assert account.reserved == 0
    assert sum((e.amount for e in entries), Decimal(0)) == account.balance
    assert all(e.balance_after >= 0 for e in entries)
    assert Reservation.objects.filter(organization=org, status="active").count() == 0
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
