"""The member quota in the refusal order (``member_budget``): after the circuit, the balance, the org
budget and the specialist budget, for a call a user started; open holds count as spent, so that
concurrent turns of one member go past the cap by at most the last call's overrun."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services as billing
from billing.errors import BillingRefusal, BudgetExhaustedError
from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from chat import metering
from chat.models import Message
from chat.queued import load_queued_turn
from core.credits import period_bounds
from orgs.models import Membership, Role
from tests.conftest import add_member, assert_problem, client_for, make_org, make_specialist

RESET_AT = "2026-07-01T00:00:00Z"  # the end of the test clock's period


@pytest.fixture
def rate(db) -> ModelRate:
    # 1000 credits per million in, 2000 out: 1000 in + 1000 out hold 3 credits
    return ModelRate.objects.create(
        model="quota-model",
        provider="openai",
        display_name="Quota",
        input_credits_per_million=Decimal("1000"),
        output_credits_per_million=Decimal("2000"),
        context_window=8000,
        max_output_tokens=1000,
    )


def set_cap(org, user, cap: Decimal | None) -> None:
    Membership.all_orgs.filter(organization=org, user=user).update(monthly_credit_limit=cap)


def reserve(org, user, cap: Decimal | None, **extra):
    return billing.reserve(
        org=org,
        model="quota-model",
        input_tokens=1000,
        max_output_tokens=1000,
        user_id=user.pk,
        member_limit=cap,
        **extra,
    )


@pytest.mark.django_db
def test_the_cap_counts_this_periods_usage_and_open_holds(clock, org, member, rate):
    cap = Decimal("5")
    first = reserve(org, member, cap)  # 3 held
    second = reserve(org, member, cap)  # 3 + 3 held: past the cap, the last call's overrun
    with pytest.raises(BudgetExhaustedError) as info:
        reserve(org, member, cap)
    assert info.value.extra == {"scope": "member_budget", "limit": "5.000000", "spent": "6.000000", "resetAt": RESET_AT}
    assert "member's monthly credit limit" in str(info.value.detail)
    billing.settle(reservation_id=first.reservation_id, input_tokens=500, output_tokens=500)  # 1.5 used
    billing.release(reservation_id=second.reservation_id)
    third = reserve(org, member, cap)  # 1.5 used + 3 held = 4.5 committed: under the cap
    fourth = reserve(org, member, cap)  # 7.5 committed
    with pytest.raises(BudgetExhaustedError) as info:
        reserve(org, member, cap)
    assert info.value.extra["spent"] == "7.500000"
    billing.release(reservation_id=third.reservation_id)
    billing.release(reservation_id=fourth.reservation_id)
    # someone else, and a call no user started (no cap read), are not affected
    reserve(org, add_member(org), Decimal("5"))
    billing.reserve(org=org, model="quota-model", input_tokens=1000, max_output_tokens=1000, member_limit=Decimal(0))
    # next month the member starts afresh; last month's usage no longer counts
    clock["at"] = period_bounds(clock["at"])[1] + (clock["at"] - period_bounds(clock["at"])[0])
    hold = reserve(org, member, Decimal("3.5"))
    assert hold.amount == Decimal(3)


@pytest.mark.django_db
def test_refusal_order_scope_by_scope_through_the_api(clock, org, owner, member, rate):
    """Every budget set and failing: the first in the contract's order is the one reported; lifting it
    reveals the next. The member's cap is read with their membership, for their turns only."""
    specialist = make_specialist(org, model="quota-model", max_output_tokens=1000)
    client = client_for(member)

    def send():
        return client.post("/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json")

    billing.adjust_credits(org=org, amount=Decimal("-99"), kind="adjustment", reason="leave one credit")
    org.monthly_budget = Decimal(0)
    org.save()
    specialist.monthly_credit_limit = Decimal(0)
    specialist.save()
    set_cap(org, member, Decimal(0))
    billing.set_circuit(org=org, actor=None, state="open", reason="Audit")

    assert assert_problem(send(), 402, "circuit_open")["scope"] == "circuit"
    billing.set_circuit(org=org, actor=None, state="closed", reason="")
    assert assert_problem(send(), 402, "insufficient_credits")["scope"] == "org_balance"
    billing.grant_credits(org=org, amount=Decimal(100), reason="more")
    assert assert_problem(send(), 402, "budget_exhausted")["scope"] == "org_budget"
    org.monthly_budget = Decimal(1000)
    org.save()
    assert assert_problem(send(), 402, "budget_exhausted")["scope"] == "specialist_budget"
    specialist.monthly_credit_limit = Decimal(1000)
    specialist.save()
    body = assert_problem(send(), 402, "budget_exhausted")
    assert {key: body[key] for key in ("scope", "limit", "spent", "resetAt")} == {
        "scope": "member_budget",
        "limit": "0.000000",
        "spent": "0.000000",
        "resetAt": RESET_AT,
    }
    # the owner, without a cap, is not stopped by the member's
    owners = client_for(owner).post(
        "/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json"
    )
    assert owners.status_code == 202, owners.content
    set_cap(org, member, Decimal(1000))
    assert send().status_code == 202
    assert Reservation.all_orgs.filter(organization=org, user_id=member.pk, status="active").count() == 1
    # the hold of the accepted turn counts: a cap just under it refuses the next turn
    held = Reservation.all_orgs.get(organization=org, user_id=member.pk, status="active").amount
    set_cap(org, member, held)
    assert assert_problem(send(), 402, "budget_exhausted")["spent"] == f"{held:.6f}"


@pytest.mark.django_db
def test_a_queued_turns_worker_reads_the_senders_cap(org, member, rate):
    """A queued turn's later calls (its tool rounds) are held by the worker against the sender's cap as
    it is then."""
    specialist = make_specialist(org, model="quota-model", max_output_tokens=1000)
    set_cap(org, member, Decimal(1000))
    response = client_for(member).post(
        "/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json"
    )
    assert response.status_code == 202, response.content
    set_cap(org, member, Decimal("0.5"))
    turn = load_queued_turn(message_id=response.json()["messageId"])
    assert turn is not None
    assert turn.payer.member_limit == Decimal("0.5")
    assert turn.payer.user_id == member.pk
    with pytest.raises(BudgetExhaustedError) as info:
        metering.hold(payer=turn.payer, request=turn.request, rate=turn.rate)
    assert info.value.extra["scope"] == "member_budget"
    assert Message.all_orgs.get(pk=turn.message_id).status == Message.Status.RUNNING


@pytest.mark.django_db
def test_a_capped_members_turn_costs_one_statement_more(org, rate):
    """The cap comes with the caller's membership (no statement); only a capped member's hold reads
    their spend, in one statement."""
    specialist = make_specialist(org, model="quota-model", max_output_tokens=1000)
    free, capped = add_member(org), add_member(org)
    set_cap(org, capped, Decimal(1000))
    counts = {}
    for user in (free, capped, free, capped):  # the second round: everything warm
        client = client_for(user, org)
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                "/api/chat/async", {"specialistId": str(specialist.pk), "message": "x"}, format="json"
            )
        assert response.status_code == 202, response.content
        counts[user.pk] = [q["sql"] for q in queries.captured_queries]
    assert len(counts[capped.pk]) == len(counts[free.pk]) + 1
    extra = [sql for sql in counts[capped.pk] if "billing_ledgerentry" in sql and sql.startswith("SELECT")]
    assert len(extra) == 1
    assert "billing_reservation" in extra[0]  # usage and open holds in the one statement


THREADS = 8
CALLS_PER_THREAD = 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_of_one_member_pass_the_cap_by_at_most_the_last_call(rate):
    """Threads, each with its own PostgreSQL connection, make calls for one capped member: the
    account's row lock serializes the check, so what is charged stays under the cap plus one call's
    hold, and every other call is refused with member_budget."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are what is under test")
    org = make_org(name="Quota racers")
    member = add_member(org, role=Role.MEMBER)
    other = add_member(org, role=Role.MEMBER)
    cap = Decimal("20")
    set_cap(org, member, cap)
    hold_cost = Decimal(3)  # 1000 in + 1000 out
    refused: list[str] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(CALLS_PER_THREAD):
                user = other if rng.random() < 0.2 else member
                try:
                    hold = reserve(org, user, cap if user is member else None)
                except BillingRefusal as exc:
                    refused.append(f"{exc.code}:{exc.extra['scope']}:{user is member}")
                    continue
                billing.settle(  # the real cost: anything up to the hold (the hold is the worst case)
                    reservation_id=hold.reservation_id,
                    input_tokens=rng.randint(0, 1000),
                    output_tokens=rng.randint(0, 1000),
                )
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    usage = LedgerEntry.all_orgs.filter(organization=org, kind="usage", user_id=member.pk)
    charged = -sum((entry.amount for entry in usage), Decimal(0))
    assert charged <= cap + hold_cost
    assert refused
    assert set(refused) == {"budget_exhausted:member_budget:True"}  # only the member, only their cap
    assert Reservation.all_orgs.filter(organization=org, status="active").count() == 0
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
