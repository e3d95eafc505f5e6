"""The ledger's hot path (one statement a hold, one a settlement) keeps every guarantee of the slow
one: 50 spenders at once on one org, each with its own PostgreSQL connection, some refused, never
overdraw it at any instant, lose nothing and leave an exact ledger; the alerts they cross are raised
once each; a settlement made on its own is on disk when it returns; its cost is token_cost's."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from billing import services
from billing.errors import BillingRefusal
from billing.models import BudgetAlert, CreditAccount, LedgerEntry, ModelRate, PayerSpend, Reservation
from billing.services import hot_ledger
from core import db
from core.credits import token_cost
from tests.conftest import make_org
from tests.servers import many_database_connections

pytestmark = pytest.mark.django_db(transaction=True)

SPENDERS = 50
CALLS_EACH = 6


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the hot path is PostgreSQL's")


@pytest.fixture
def race_rate(db) -> ModelRate:
    # a hold of 100 in + 300 out is 0.1 + 0.9 = 1 credit; real costs run from 0 to 2.9 credits
    return ModelRate.objects.create(
        model="hot-model",
        provider="openai",
        display_name="Hot",
        input_credits_per_million=Decimal(1000),
        output_credits_per_million=Decimal(3000),
        context_window=8000,
        max_output_tokens=1000,
    )


def _wait_for_free_connections(needed: int) -> None:
    """Waits (up to two minutes) until PostgreSQL has ``needed`` connections to spare."""
    with connection.cursor() as cursor:
        for _ in range(240):
            cursor.execute(
                "SELECT current_setting('max_connections')::int - count(*)"
                " - current_setting('superuser_reserved_connections')::int FROM pg_stat_activity"
            )
            if cursor.fetchone()[0] >= needed:
                return
            time.sleep(0.5)


def test_fifty_spenders_on_one_org_never_overdraw_it_nor_lose_a_settlement(postgresql, race_rate):
    org = make_org(name="Hot account")
    opening = CreditAccount.all_orgs.get(organization=org).balance
    services.adjust_credits(org=org, amount=Decimal(120) - opening, kind="adjustment", reason="leave 120 credits")
    org.monthly_budget = Decimal(1000)  # 50 % and 80 % are crossed on the way, 100 % never
    org.low_balance_threshold = Decimal(10)
    org.save()
    capped_member, cap = uuid.uuid4(), Decimal(3)  # one member's turns in five threads: at most 3 + one overrun
    refused: list[str] = []
    charges: list[services.Charge] = []
    errors: list[BaseException] = []
    lowest_available: list[Decimal] = []
    barrier = threading.Barrier(SPENDERS + 1)
    done = threading.Event()

    def spender(seed: int) -> None:
        rng = random.Random(seed)
        payer = {"user_id": capped_member, "member_limit": cap} if seed < 5 else {"user_id": uuid.uuid4()}
        try:
            barrier.wait()
            for _ in range(CALLS_EACH):
                try:
                    hold = services.reserve(
                        org=org, model="hot-model", input_tokens=100, max_output_tokens=300, **payer
                    )
                except BillingRefusal as exc:
                    refused.append(f"{exc.code}:{exc.extra['scope']}")
                    continue
                charges.append(
                    services.settle(
                        reservation_id=hold.reservation_id,
                        input_tokens=rng.randint(0, 2000),  # sometimes far above the hold's estimate
                        output_tokens=rng.randint(0, 300),
                    )
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def watcher() -> None:
        """The account as any reader sees it while the spenders run."""
        try:
            barrier.wait()
            while not done.is_set():
                account = CreditAccount.all_orgs.get(organization=org)
                lowest_available.append(min(account.balance, account.balance - account.reserved))
        finally:
            connection.close()

    with many_database_connections():  # not beside another test that takes many connections
        _wait_for_free_connections(SPENDERS + 12)  # the other test worker's server stacks share the server's 100
        threads = [threading.Thread(target=spender, args=(i,)) for i in range(SPENDERS)]
        watching = threading.Thread(target=watcher)
        for thread in [*threads, watching]:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        watching.join()

    assert errors == []
    assert len(charges) + len(refused) == SPENDERS * CALLS_EACH
    assert refused, "the org should have run out of credits"
    assert set(refused) <= {"insufficient_credits:org_balance", "budget_exhausted:member_budget"}
    assert lowest_available
    assert min(lowest_available) >= 0  # never below zero, at any instant
    account = CreditAccount.all_orgs.get(organization=org)
    assert account.balance >= 0
    assert account.reserved == 0
    assert not Reservation.all_orgs.filter(organization=org, status=Reservation.Status.ACTIVE).exists()
    usage = {entry.pk: entry for entry in LedgerEntry.all_orgs.filter(organization=org, kind="usage")}
    assert len(usage) == len(charges)  # one entry a settlement, none lost, none twice
    assert all(usage[charge.ledger_entry_id].amount == -charge.credits for charge in charges)
    assert account.period_spent == sum((charge.credits for charge in charges), Decimal(0))
    entries = sorted(LedgerEntry.all_orgs.filter(organization=org), key=lambda entry: (entry.created_at, entry.pk))
    running = Decimal(0)
    for entry in entries:  # every row: its balance after is the sum of the entries up to it
        running += entry.amount
        assert entry.balance_after == running
    assert running == account.balance
    counted = {(row.payer, row.payer_id): row.spent for row in PayerSpend.all_orgs.filter(organization=org)}
    summed: dict[tuple[str, uuid.UUID], Decimal] = {}
    for entry in usage.values():  # what the caps read is what the ledger says, payer by payer
        for payer in ("specialist_id", "user_id", "api_key_id"):
            if getattr(entry, payer) is not None and entry.amount:
                key = (payer, getattr(entry, payer))
                summed[key] = summed.get(key, Decimal(0)) - entry.amount
    assert counted == summed
    member_spent = -sum((e.amount for e in usage.values() if e.user_id == capped_member), Decimal(0))
    # Past the cap by at most the overruns of the calls in flight when it was reached: their holds
    # (1 credit each) counted, at most cap / hold = 3 were open together, each costing at most 2.9.
    # (A cap that ignored open holds would admit every call of the five threads while the spend is under 3.)
    assert member_spent <= cap + 3 * (Decimal("2.9") - 1)
    alerts = BudgetAlert.all_orgs.filter(organization=org).values_list("kind", "threshold")
    expected = [("low_balance", Decimal(10))] if account.balance < 10 else []
    expected += [("budget_threshold", Decimal(t)) for t in (50, 80) if account.period_spent >= 10 * t]
    assert sorted(alerts) == sorted(expected)  # each crossed threshold once, however many crossed it


def test_an_alert_of_a_settlement_rolled_back_is_raised_by_the_next(postgresql, race_rate):
    """The alert commits with its settlement: rolled back with it, and then raised by the next one
    (this process does not take it for raised)."""
    org = make_org(name="Alerted")
    org.monthly_budget = Decimal(2)
    org.save()
    hold = services.reserve(org=org, model="hot-model", input_tokens=100, max_output_tokens=300)
    raised_inside: list[int] = []

    def settle_then_fail() -> None:
        with transaction.atomic():
            services.settle(reservation_id=hold.reservation_id, input_tokens=100, output_tokens=300)  # 50 %
            raised_inside.append(BudgetAlert.all_orgs.filter(organization=org).count())
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        settle_then_fail()
    assert raised_inside == [1]
    assert not BudgetAlert.all_orgs.filter(organization=org).exists()
    services.settle(reservation_id=hold.reservation_id, input_tokens=100, output_tokens=300)
    assert list(BudgetAlert.all_orgs.filter(organization=org).values_list("threshold", flat=True)) == [50]


@pytest.mark.parametrize("durable", [True, False])
def test_a_settlement_on_its_own_is_on_disk_when_it_returns(postgresql, race_rate, monkeypatch, durable):
    """Its commit does not wait for the disk (the account's lock is not held over the flush); the
    wait comes after, so it is durable when it returns. Without the wait, it often is not yet: the
    check can fail."""
    org = make_org(name="Durable")
    raw = connection
    seen: list[bool] = []
    if not durable:
        monkeypatch.setattr(db, "wait_for_disk", lambda: None)
    for _ in range(20):
        hold = services.reserve(org=org, model="hot-model", input_tokens=1, max_output_tokens=1)
        committed_at: list[str] = []

        def before_the_wait(execute, sql, params, many, context, committed_at=committed_at):
            if "pg_logical_emit_message" in sql:  # the settlement has committed: where the WAL is now
                with raw.connection.cursor() as cursor:
                    committed_at.append(cursor.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
            return execute(sql, params, many, context)

        with raw.execute_wrapper(before_the_wait):
            services.settle(reservation_id=hold.reservation_id, input_tokens=1, output_tokens=1)
        with raw.cursor() as cursor:
            if not committed_at:
                cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
                committed_at.append(cursor.fetchone()[0])
            cursor.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", [committed_at[0]])
            seen.append(cursor.fetchone()[0])
    if durable:
        assert all(seen)
    else:
        assert not all(seen)


@pytest.mark.parametrize("seed", range(5))
def test_the_statements_cost_is_token_costs(postgresql, seed):
    rng = random.Random(seed)
    cases = [(rng.randint(0, 2_000_000), rng.randint(0, 200_000)) for _ in range(200)]
    rates = [(Decimal(rng.randint(0, 100_000_000)) / 1_000_000, Decimal(rng.randint(0, 100_000_000)) / 1_000_000)]
    rates += [(Decimal("0.5"), Decimal("1.5")), (Decimal("0.000001"), Decimal("0.000003"))]  # halves to round
    sql = (
        f"SELECT {hot_ledger.COST} FROM (SELECT %(rin)s::numeric AS input_credits_per_million, "  # noqa: S608
        "%(rout)s::numeric AS output_credits_per_million) r"
    )
    for rin, rout in rates:
        for input_tokens, output_tokens in [*cases, (1, 0), (1, 1), (3, 1)]:
            with connection.cursor() as cursor:
                cursor.execute(
                    sql, {"input_tokens": input_tokens, "output_tokens": output_tokens, "rin": rin, "rout": rout}
                )
                (found,) = cursor.fetchone()
            assert found == token_cost(
                input_tokens=input_tokens, output_tokens=output_tokens, input_per_million=rin, output_per_million=rout
            ), (input_tokens, output_tokens, rin, rout)


def test_statements_sent_together_are_one_transaction(postgresql, race_rate):
    """What a capped hold on its own relies on: its lock and its hold are one transaction (the lock
    lasts until the hold is written), and a failure takes both back."""
    from django.db import DataError

    org = make_org(name="Together")
    scope = db.InOrg(org.pk)
    same = db.Statement("SELECT pg_current_xact_id()::text, %(org)s::uuid AS organization_id", {"org": org.pk}, scope)
    first, second = db.fetch_together(same, same)
    assert first == second  # one transaction id for both
    before = CreditAccount.all_orgs.get(organization=org).reserved
    grow = db.Statement(
        "UPDATE billing_creditaccount SET reserved = reserved + 1 WHERE organization_id = %(org)s",
        {"org": org.pk},
        scope,
    )
    fail = db.Statement("SELECT 1 / 0", {}, db.AcrossOrgs("a statement that fails, in this test"))
    with pytest.raises(DataError):
        db.fetch_together(grow, fail)
    assert CreditAccount.all_orgs.get(organization=org).reserved == before  # taken back whole
    db.fetch_together(grow)
    assert CreditAccount.all_orgs.get(organization=org).reserved == before + 1


def test_a_settlement_that_waited_seconds_for_the_row_is_dated_after_the_change_before_it(postgresql, race_rate, clock):
    """Two calls read the clock in one order and reach the account in the other, seconds apart (a
    wait for the row under load): entries in the order of their time still chain their balances."""
    org = make_org(name="Slow row")
    first = services.reserve(org=org, model="hot-model", input_tokens=100, max_output_tokens=300, user_id=uuid.uuid4())
    second = services.reserve(org=org, model="hot-model", input_tokens=100, max_output_tokens=300, user_id=uuid.uuid4())
    services.settle(reservation_id=first.reservation_id, input_tokens=500, output_tokens=100)
    clock["at"] -= timedelta(seconds=5)  # the second read the clock 5 s before it reached the row
    services.settle(reservation_id=second.reservation_id, input_tokens=700, output_tokens=200)
    entries = sorted(LedgerEntry.all_orgs.filter(organization=org), key=lambda entry: (entry.created_at, entry.pk))
    assert [entry.kind for entry in entries][-2:] == ["usage", "usage"]
    running = Decimal(0)
    for entry in entries:
        running += entry.amount
        assert entry.balance_after == running
