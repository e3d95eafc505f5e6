"""An API key's monthly cap in the refusal order (``api_key_budget``): last, after the circuit, the
balance, the org budget and the specialist budget, for a call started with a key; open holds count
as spent, so that concurrent turns of one key go past its cap by at most the last call's overrun. A
key's usage is no member's: its entries carry the key and no user."""

from __future__ import annotations

import random
import threading
import uuid
from decimal import Decimal

import pytest
from django.db import connection

from billing import services as billing
from billing.errors import BillingRefusal, BudgetExhaustedError, CircuitOpenError, InsufficientCreditsError
from billing.models import CreditAccount, LedgerEntry, ModelRate, Reservation
from core.credits import period_bounds
from orgs import api_keys
from orgs.context import OrgContext
from orgs.models import ApiKey, Membership, Role
from tests.conftest import make_org

RESET_AT = "2026-07-01T00:00:00Z"  # the end of the test clock's period


@pytest.fixture
def rate(db) -> ModelRate:
    # 1000 credits per million in, 2000 out: 1000 in + 1000 out hold 3 credits
    return ModelRate.objects.create(
        model="key-model",
        provider="openai",
        display_name="Key",
        input_credits_per_million=Decimal("1000"),
        output_credits_per_million=Decimal("2000"),
        context_window=8000,
        max_output_tokens=1000,
    )


def new_key(org, *, cap: Decimal | None = None, role: str = Role.MEMBER) -> ApiKey:
    owner = Membership.all_orgs.get(organization=org, role=Role.OWNER)
    context = OrgContext(org=org, membership=owner, is_staff=False)
    return api_keys.create_api_key(context=context, name="server", role=role, monthly_credit_limit=cap).key


def reserve(org, key: ApiKey, cap: Decimal | None, **extra) -> billing.Hold:
    return billing.reserve(
        org=org,
        model="key-model",
        input_tokens=1000,
        max_output_tokens=1000,
        api_key_id=key.pk,
        key_limit=cap,
        **extra,
    )


@pytest.mark.django_db
def test_the_keys_cap_counts_this_periods_usage_and_open_holds(clock, org, member, rate):
    key = new_key(org, cap=Decimal(5))
    cap = key.monthly_credit_limit
    first = reserve(org, key, cap)  # 3 held
    second = reserve(org, key, cap)  # 3 + 3 held: past the cap, the last call's overrun
    with pytest.raises(BudgetExhaustedError) as info:
        reserve(org, key, cap)
    assert info.value.extra == {
        "scope": "api_key_budget",
        "limit": "5.000000",
        "spent": "6.000000",
        "resetAt": RESET_AT,
    }
    assert "API key's monthly credit limit" in str(info.value.detail)
    billing.settle(reservation_id=first.reservation_id, input_tokens=500, output_tokens=500)  # 1.5 used
    billing.release(reservation_id=second.reservation_id)
    third = reserve(org, key, cap)  # 1.5 used + 3 held = 4.5 committed: under the cap
    assert billing.key_spent(org=org, api_key_id=key.pk, since=period_bounds(clock["at"])[0]) == Decimal("4.5")
    reserve(org, key, cap)  # 7.5 committed
    with pytest.raises(BudgetExhaustedError) as info:
        reserve(org, key, cap)
    assert info.value.extra["spent"] == "7.500000"
    # another key, a member's call and a call without a key are not affected by this key's spend
    reserve(org, new_key(org), Decimal(5))
    billing.reserve(
        org=org, model="key-model", input_tokens=1000, max_output_tokens=1000, user_id=member.pk, member_limit=None
    )
    billing.reserve(org=org, model="key-model", input_tokens=1000, max_output_tokens=1000, key_limit=Decimal(0))
    billing.release(reservation_id=third.reservation_id)
    # next month the key starts afresh; last month's usage no longer counts (the open hold still does)
    clock["at"] = period_bounds(clock["at"])[1] + (clock["at"] - period_bounds(clock["at"])[0])
    assert reserve(org, key, Decimal("6.5")).amount == Decimal(3)


@pytest.mark.django_db
def test_a_keys_hold_and_usage_name_the_key_and_no_user(org, member, rate):
    """The ledger entry of a key's call carries the key (from its hold), never a user: a key's turns
    count against no member's quota."""
    key = new_key(org)
    hold = reserve(org, key, None, session_id=uuid.uuid4(), message_id=uuid.uuid4())
    reservation = Reservation.all_orgs.get(pk=hold.reservation_id)
    assert (reservation.api_key_id, reservation.user_id) == (key.pk, None)
    charge = billing.settle(reservation_id=hold.reservation_id, input_tokens=100, output_tokens=100)
    entry = LedgerEntry.all_orgs.get(pk=charge.ledger_entry_id)
    assert (entry.api_key_id, entry.user_id, entry.kind) == (key.pk, None, "usage")
    since = period_bounds(entry.created_at)[0]
    assert billing.member_spent(org=org, user_id=member.pk, since=since) == 0
    assert billing.key_spent(org=org, api_key_id=key.pk, since=since) == -entry.amount
    # a member's call names no key
    mine = billing.reserve(org=org, model="key-model", input_tokens=10, max_output_tokens=10, user_id=member.pk)
    charge = billing.settle(reservation_id=mine.reservation_id, input_tokens=10, output_tokens=10)
    assert LedgerEntry.all_orgs.filter(pk=charge.ledger_entry_id, user_id=member.pk, api_key_id=None).exists()


@pytest.mark.django_db
def test_a_call_is_started_by_a_user_or_a_key_never_both(org, member, rate):
    with pytest.raises(ValueError, match="not both"):
        billing.reserve(
            org=org,
            model="key-model",
            input_tokens=1,
            max_output_tokens=1,
            user_id=member.pk,
            api_key_id=new_key(org).pk,
        )
    assert not Reservation.all_orgs.filter(organization=org).exists()


@pytest.mark.django_db
def test_refusal_order_scope_by_scope_for_a_key_started_call(clock, org, member, rate):
    """Every limit set and failing for a call started with a key: the first in the contract's order
    is the one reported, lifting it reveals the next, and the key's cap comes last. A member's cap,
    even exhausted, never stops a key's call (it counts against no member)."""
    key = new_key(org, cap=Decimal(0))
    specialist_id = uuid.uuid4()
    limits = {"specialist": Decimal(0), "member": Decimal(0), "key": Decimal(0)}

    def attempt() -> billing.Hold:
        return billing.reserve(
            org=org,
            model="key-model",
            input_tokens=1000,
            max_output_tokens=1000,
            specialist_id=specialist_id,
            specialist_limit=limits["specialist"],
            member_limit=limits["member"],  # no user: never read
            api_key_id=key.pk,
            key_limit=limits["key"],
        )

    def refusal() -> BillingRefusal:
        with pytest.raises(BillingRefusal) as info:
            attempt()
        return info.value

    billing.adjust_credits(org=org, amount=Decimal("-99"), kind="adjustment", reason="leave one credit")
    org.monthly_budget = Decimal(0)
    org.save()
    billing.set_circuit(org=org, actor=None, state="open", reason="Audit")

    refused = refusal()
    assert isinstance(refused, CircuitOpenError)
    assert refused.extra["scope"] == "circuit"
    billing.set_circuit(org=org, actor=None, state="closed", reason="")
    refused = refusal()
    assert isinstance(refused, InsufficientCreditsError)
    assert refused.extra == {"scope": "org_balance", "required": "3.000000", "available": "1.000000"}
    billing.grant_credits(org=org, amount=Decimal(100), reason="more")
    assert refusal().extra == {"scope": "org_budget", "limit": "0.000000", "spent": "0.000000", "resetAt": RESET_AT}
    org.monthly_budget = Decimal(1000)
    org.save()
    assert refusal().extra["scope"] == "specialist_budget"
    limits["specialist"] = Decimal(1000)
    refused = refusal()
    assert refused.code == "budget_exhausted"
    assert refused.extra == {"scope": "api_key_budget", "limit": "0.000000", "spent": "0.000000", "resetAt": RESET_AT}
    limits["key"] = Decimal(1000)
    hold = attempt()  # every limit lifted: the call is held
    assert Reservation.all_orgs.get(pk=hold.reservation_id).api_key_id == key.pk
    # the same call started by the member stops at their cap (member_budget), the key's is not read
    with pytest.raises(BudgetExhaustedError) as info:
        billing.reserve(
            org=org,
            model="key-model",
            input_tokens=1000,
            max_output_tokens=1000,
            user_id=member.pk,
            member_limit=Decimal(0),
            key_limit=Decimal(0),
        )
    assert info.value.extra["scope"] == "member_budget"


@pytest.mark.django_db
def test_a_grown_hold_is_checked_against_its_keys_cap(clock, org, rate):
    """A queued turn's hold, grown when a worker picks it up, counts against the key it names."""
    key = new_key(org)
    hold = billing.reserve(
        org=org, model="key-model", input_tokens=1000, max_output_tokens=1000, api_key_id=key.pk, key_limit=Decimal(4)
    )  # 3 held
    with pytest.raises(BudgetExhaustedError) as info:  # its own 3 held already reach a cap of 3
        billing.grow_hold(
            reservation_id=hold.reservation_id, input_tokens=3000, max_output_tokens=1000, key_limit=Decimal(3)
        )
    assert info.value.extra == {
        "scope": "api_key_budget",
        "limit": "3.000000",
        "spent": "3.000000",
        "resetAt": RESET_AT,
    }
    assert Reservation.all_orgs.get(pk=hold.reservation_id).amount == Decimal(3)  # nothing written
    added = billing.grow_hold(
        reservation_id=hold.reservation_id, input_tokens=3000, max_output_tokens=1000, key_limit=Decimal(4)
    )
    assert added == Decimal(2)
    charge = billing.settle(reservation_id=hold.reservation_id, input_tokens=3000, output_tokens=0)
    assert LedgerEntry.all_orgs.get(pk=charge.ledger_entry_id).api_key_id == key.pk


THREADS = 8
CALLS_PER_THREAD = 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_of_one_key_pass_its_cap_by_at_most_the_last_call(rate):
    """Threads, each with its own PostgreSQL connection, make calls with one capped key (and some with
    an uncapped one): the account's row lock serializes the check, so what the key is charged stays
    under its cap plus one call's hold, and every other call of it is refused with api_key_budget."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are what is under test")
    org = make_org(name="Key racers")
    capped, free = new_key(org, cap=Decimal(20)), new_key(org)
    cap = Decimal(20)
    hold_cost = Decimal(3)  # 1000 in + 1000 out
    refused: list[str] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(CALLS_PER_THREAD):
                key = free if rng.random() < 0.2 else capped
                try:
                    hold = reserve(org, key, cap if key is capped else None)
                except BillingRefusal as exc:
                    refused.append(f"{exc.code}:{exc.extra['scope']}:{key is capped}")
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
    usage = LedgerEntry.all_orgs.filter(organization=org, kind="usage", api_key_id=capped.pk)
    charged = -sum((entry.amount for entry in usage), Decimal(0))
    assert charged <= cap + hold_cost
    assert refused
    assert set(refused) == {"budget_exhausted:api_key_budget:True"}  # only the capped key, only its cap
    assert not LedgerEntry.all_orgs.filter(organization=org, kind="usage", user_id__isnull=False).exists()
    assert Reservation.all_orgs.filter(organization=org, status="active").count() == 0
    assert CreditAccount.all_orgs.get(organization=org).reserved == 0
