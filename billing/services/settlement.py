"""Settlement: a call's hold charged to the provider's reported usage, its ledger entry written, the
org's alerts raised with it (one statement on PostgreSQL: ``hot_ledger``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing import usage_metrics
from billing.models import CreditAccount, LedgerEntry, Reservation
from billing.services import hot_ledger
from billing.services.alerts import AlertSettings, evaluate_alerts, raise_due_alerts
from billing.services.ledger import account_sql, joined_account, roll_period, write_ledger_entry
from core import db
from core.credits import period_bounds, quantize_credits, token_cost


@dataclass(frozen=True)
class Charge:
    credits: Decimal
    balance: Decimal
    ledger_entry_id: uuid.UUID | None


def settle(*, reservation_id: uuid.UUID, input_tokens: int, output_tokens: int, description: str = "") -> Charge:
    """Charges the real cost (provider-reported usage), releases the rest of the hold, writes one
    usage entry. A cost above the hold comes out of the available balance as far as it goes. A hold
    already given back (its turn was taken for lost while the call went on) is still charged, out of
    the available balance as far as it goes. Settling twice charges once. In a transaction of its
    own, it commits without waiting for the disk (the account's lock is not held over the flush)
    and returns once that commit is on disk: a settlement it reports is durable."""
    usage = ReportedUsage(input_tokens=input_tokens, output_tokens=output_tokens, description=description)
    if connection.in_atomic_block or connection.vendor != "postgresql":
        with transaction.atomic(savepoint=False):
            return _settle(reservation_id, usage)
    # On its own: one statement, a transaction of its own, unless an alert is due (then the alert
    # commits with it, in a transaction of ours); either way its commit does not wait for the disk
    # under the account's lock, and the wait comes after it.
    charge = _settle_in_one_statement(reservation_id, usage, alone=True)
    if charge is None:
        with transaction.atomic(savepoint=False):
            db.commit_without_waiting_for_disk()
            charge = _settle(reservation_id, usage)
    db.wait_for_disk()
    return charge


@dataclass(frozen=True, slots=True)
class ReportedUsage:
    """What a settlement charges: the provider's reported tokens, and the ledger entry's words."""

    input_tokens: int
    output_tokens: int
    description: str


def _settle_in_one_statement(reservation_id: uuid.UUID, usage: ReportedUsage, *, alone: bool) -> Charge | None:
    """PostgreSQL: the settlement in one statement, its alerts raised after it (no statement unless one
    is due); None, with nothing written, for a hold settled already or none (or, ``alone``, an alert
    due)."""
    now = timezone.now()
    entry_id = uuid.uuid4()
    settled = hot_ledger.settle(
        reservation_id=reservation_id,
        entry_id=entry_id,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        description=usage.description,
        now=now,
        period_start=period_bounds(now)[0],
        alone=alone,
    )
    if settled is None:
        return None
    settings = AlertSettings(
        settled.org_id, settled.org_name, settled.billing_email, settled.monthly_budget, settled.low_balance_threshold
    )
    raise_due_alerts(settings, balance=settled.balance, period_spent=settled.period_spent)
    usage_metrics.record_billed_call(
        model=settled.model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, credits=settled.charge
    )
    return Charge(credits=settled.charge, balance=settled.balance, ledger_entry_id=entry_id)


def _settle(reservation_id: uuid.UUID, usage: ReportedUsage) -> Charge:
    """The settlement in the caller's transaction: one statement on PostgreSQL; a hold settled already
    (its charge), no such hold, or SQLite: read, lock, write."""
    if connection.vendor == "postgresql":
        settled = _settle_in_one_statement(reservation_id, usage, alone=False)
        if settled is not None:
            return settled
    input_tokens, output_tokens, description = usage.input_tokens, usage.output_tokens, usage.description
    reservation = locked_hold(reservation_id)
    if reservation is None:
        raise Reservation.DoesNotExist(reservation_id)
    account = reservation.account
    if reservation.status == Reservation.Status.SETTLED:
        return Charge(
            credits=reservation.charged or Decimal(0),
            balance=account.balance,
            ledger_entry_id=reservation.ledger_entry_id,
        )
    cost = token_cost(  # at the rates in force when the call was reserved
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_per_million=reservation.input_credits_per_million,
        output_per_million=reservation.output_credits_per_million,
    )
    if reservation.status == Reservation.Status.ACTIVE:
        account.reserved = quantize_credits(account.reserved - reservation.amount)
    charge = max(Decimal(0), min(cost, account.balance - account.reserved))
    account.period_spent = quantize_credits(account.period_spent + charge)
    entry = write_ledger_entry(
        account,
        kind=LedgerEntry.Kind.USAGE,
        amount=-charge,
        description=description or f"{input_tokens} in + {output_tokens} out tokens on {reservation.model}",
        model=reservation.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        specialist_id=reservation.specialist_id,
        specialist_name=reservation.specialist_name,
        session_id=reservation.session_id,
        message_id=reservation.message_id,
        user_id=reservation.user_id,
        api_key_id=reservation.api_key_id,
    )
    reservation.status = Reservation.Status.SETTLED
    reservation.charged = charge
    reservation.ledger_entry = entry
    reservation.closed_at = timezone.now()
    db.update(reservation, "status", "charged", "ledger_entry", "closed_at")
    evaluate_alerts(org=account.organization, account=account)
    usage_metrics.record_billed_call(
        model=reservation.model, input_tokens=input_tokens, output_tokens=output_tokens, credits=charge
    )
    return Charge(credits=charge, balance=account.balance, ledger_entry_id=entry.pk)


def locked_hold(reservation_id: uuid.UUID) -> Reservation | None:
    """The hold and its account (with its org and circuit), both locked, in one statement; the
    account rolled into the current period."""
    sql = account_sql(
        before=f"{db.columns(Reservation, 'r')}, ",
        source=f"{Reservation._meta.db_table} r JOIN {CreditAccount._meta.db_table} a ON a.id = r.account_id",
        where="r.id = %s",
        locked="r, a",
    )
    found = db.rows(sql, [reservation_id], scope=db.AcrossOrgs("a hold by its own id, with its account"))
    if not found:
        return None
    reservation = found[0].take(Reservation)
    reservation.account = roll_period(joined_account(found[0]))
    return reservation
