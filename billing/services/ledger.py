"""Credit accounts and the append-only ledger: opening, grants, refunds, adjustments.

Every change of an account's money happens under a row lock on that account
(``select_for_update``), so concurrent calls serialize per org and the balance never goes
below zero; database constraints back that up."""

from __future__ import annotations

import uuid
from decimal import Decimal
from functools import cache

from django.db import transaction
from django.utils import timezone

from billing import webhook_events
from billing.models import (
    Circuit,
    CreditAccount,
    CreditPackage,
    LedgerEntry,
)
from core import db
from core.credits import period_bounds, quantize_credits
from core.errors import ValidationFailed
from orgs.models import Organization


def open_account(*, org: Organization, signup_credits: Decimal = Decimal(0)) -> CreditAccount:
    start, _ = period_bounds(timezone.now())
    account, _ = CreditAccount.objects.get_or_create(organization=org, defaults={"period_start": start})
    Circuit.objects.get_or_create(organization=org)
    if signup_credits > 0:
        grant_credits(org=org, amount=signup_credits, reason="Sign-up credits", actor=None)
    return account


@cache
def account_sql(*, source: str, where: str, locked: str, before: str = "") -> str:
    """A locked read of accounts with their org and circuit: ``source`` names the account ``a``
    (and joins whatever is read ``before`` it); the org is ``o`` and its circuit, if any, ``c``."""
    # names come from the models and the callers' literals; every value is a parameter
    return (
        f"SELECT {before}{db.columns(CreditAccount, 'a')}, {db.columns(Organization, 'o')}, "  # noqa: S608
        f"{db.columns(Circuit, 'c')} FROM {source} "
        f"JOIN {Organization._meta.db_table} o ON o.id = a.organization_id "
        f"LEFT JOIN {Circuit._meta.db_table} c ON c.organization_id = o.id "
        f"WHERE {where}{db.lock(locked)}"
    )


def joined_account(row: db.Row) -> CreditAccount:
    """The account of an ``account_sql`` row, with its org and the org's circuit (or none) attached."""
    account = row.take(CreditAccount)
    org = row.take(Organization)
    circuit = row.take_optional(Circuit)
    account.organization = org
    Organization.circuit.related.set_cached_value(org, circuit)  # None: no circuit, and no query for it
    if circuit is not None:
        Circuit.organization.field.set_cached_value(circuit, org)
    return account


def locked_account(org: Organization | uuid.UUID) -> CreditAccount:
    """The org's account (with its org and circuit), locked for this transaction (only the
    account row), rolled into the current period."""
    org_id: uuid.UUID = org.pk if isinstance(org, Organization) else org
    sql = account_sql(source=f"{CreditAccount._meta.db_table} a", where="a.organization_id = %s", locked="a")
    found = db.rows(sql, [org_id], scope=db.InOrg(org_id))
    if not found:
        open_account(org=Organization.objects.get(pk=org_id))
        found = db.rows(sql, [org_id], scope=db.InOrg(org_id))
    return roll_period(joined_account(found[0]))


def roll_period(account: CreditAccount) -> CreditAccount:
    """A locked account whose period has ended starts the current one (spend back to zero)."""
    start, _ = period_bounds(timezone.now())
    if account.period_start < start:
        account.period_start = start
        account.period_spent = Decimal(0)
        db.update(account, "period_start", "period_spent", "updated_at")
    return account


def write_ledger_entry(
    account: CreditAccount, *, kind: str, amount: Decimal, description: str = "", **fields: object
) -> LedgerEntry:
    account.balance = quantize_credits(account.balance + amount)
    db.update(account, "balance", "reserved", "period_spent", "updated_at")
    (entry,) = db.insert(
        LedgerEntry(
            organization_id=account.organization_id,
            kind=kind,
            amount=quantize_credits(amount),
            balance_after=account.balance,
            description=description[:500],
            **fields,
        )
    )
    return entry


@transaction.atomic
def grant_credits(
    *,
    org: Organization,
    amount: Decimal | None = None,
    package: CreditPackage | None = None,
    reason: str = "",
    actor: object | None = None,
) -> LedgerEntry:
    if package is not None:
        amount = package.credits
        reason = reason or f"Package {package.name}"
    if amount is None or quantize_credits(amount) <= 0:
        raise ValidationFailed("amount", "The amount must be greater than zero.")
    account = locked_account(org)
    entry = write_ledger_entry(
        account,
        kind=LedgerEntry.Kind.GRANT,
        amount=quantize_credits(amount),
        description=reason,
        package=package,
        user_id=getattr(actor, "pk", None),
    )
    webhook_events.credits_granted(entry)
    return entry


@transaction.atomic
def adjust_credits(
    *, org: Organization, amount: Decimal, kind: str, reason: str, actor: object | None = None
) -> LedgerEntry:
    """An operator's signed adjustment or a (positive) refund. Never takes held credits."""
    amount = quantize_credits(amount)
    if kind not in (LedgerEntry.Kind.ADJUSTMENT, LedgerEntry.Kind.REFUND):
        raise ValidationFailed("kind", "Must be adjustment or refund.")
    if amount == 0 or (kind == LedgerEntry.Kind.REFUND and amount < 0):
        raise ValidationFailed("amount", "A refund must be positive and an adjustment non-zero.")
    account = locked_account(org)
    if account.balance + amount < account.reserved:
        raise ValidationFailed("amount", "The adjustment would take the balance below what is held or zero.")
    return write_ledger_entry(account, kind=kind, amount=amount, description=reason, user_id=getattr(actor, "pk", None))
