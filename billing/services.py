"""Billing writes: accounts, grants, metering (reserve / settle / release), alerts, circuit.

Every change of an account's money happens under a row lock on that account
(``select_for_update``), so concurrent calls serialize per org and the balance
never goes below zero; database constraints back that up.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.errors import (
    BudgetExhaustedError,
    CircuitOpenError,
    InsufficientCreditsError,
    UnknownModelError,
)
from billing.models import (
    BudgetAlert,
    Circuit,
    CircuitEvent,
    CreditAccount,
    CreditPackage,
    LedgerEntry,
    ModelRate,
    Reservation,
)
from leancore.api.errors import ValidationFailed
from leancore.credits import credit_str, period_bounds, q, token_cost
from orgs.models import Organization

logger = logging.getLogger(__name__)

BUDGET_THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))


# --- accounts -------------------------------------------------------------------------------


def open_account(*, org: Organization, signup_credits: Decimal = Decimal(0)) -> CreditAccount:
    start, _ = period_bounds(timezone.now())
    account, _ = CreditAccount.objects.get_or_create(organization=org, defaults={"period_start": start})
    Circuit.objects.get_or_create(organization=org)
    if signup_credits > 0:
        grant_credits(org=org, amount=signup_credits, reason="Sign-up credits", actor=None)
    return account


def _locked_account(org: Organization | uuid.UUID) -> CreditAccount:
    """The org's account (with its org and circuit), locked for this transaction (only the
    account row), rolled into the current period."""
    org_id = getattr(org, "pk", org)
    accounts = CreditAccount.objects.select_for_update(of=("self",)).select_related(
        "organization", "organization__circuit"
    )
    account = accounts.filter(organization_id=org_id).first()
    if account is None:
        open_account(org=Organization.objects.get(pk=org_id))
        account = accounts.get(organization_id=org_id)
    start, _ = period_bounds(timezone.now())
    if account.period_start < start:
        account.period_start = start
        account.period_spent = Decimal(0)
        account.save(update_fields=["period_start", "period_spent", "updated_at"])
    return account


def _ledger(
    account: CreditAccount, *, kind: str, amount: Decimal, description: str = "", **fields: object
) -> LedgerEntry:
    account.balance = q(account.balance + amount)
    account.save(update_fields=["balance", "reserved", "period_spent", "updated_at"])
    return LedgerEntry.objects.create(
        organization_id=account.organization_id,
        kind=kind,
        amount=q(amount),
        balance_after=account.balance,
        description=description[:500],
        **fields,
    )


# --- grants, refunds, adjustments -------------------------------------------------------------


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
    if amount is None or q(amount) <= 0:
        raise ValidationFailed("amount", "The amount must be greater than zero.")
    account = _locked_account(org)
    return _ledger(
        account,
        kind=LedgerEntry.Kind.GRANT,
        amount=q(amount),
        description=reason,
        package=package,
        user_id=getattr(actor, "pk", None),
    )


@transaction.atomic
def adjust_credits(
    *, org: Organization, amount: Decimal, kind: str, reason: str, actor: object | None = None
) -> LedgerEntry:
    """An operator's signed adjustment or a (positive) refund. Never takes held credits."""
    amount = q(amount)
    if kind not in (LedgerEntry.Kind.ADJUSTMENT, LedgerEntry.Kind.REFUND):
        raise ValidationFailed("kind", "Must be adjustment or refund.")
    if amount == 0 or (kind == LedgerEntry.Kind.REFUND and amount < 0):
        raise ValidationFailed("amount", "A refund must be positive and an adjustment non-zero.")
    account = _locked_account(org)
    if account.balance + amount < account.reserved:
        raise ValidationFailed("amount", "The adjustment would take the balance below what is held or zero.")
    return _ledger(account, kind=kind, amount=amount, description=reason, user_id=getattr(actor, "pk", None))


# --- metering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    reservation_id: uuid.UUID
    amount: Decimal
    rate: ModelRate


@dataclass(frozen=True)
class Charge:
    credits: Decimal
    balance: Decimal
    ledger_entry_id: uuid.UUID | None


def active_rate(model: str) -> ModelRate:
    rate = ModelRate.objects.filter(model=model, active=True).first()
    if rate is None:
        raise UnknownModelError(model)
    return rate


def worst_case_cost(*, rate: ModelRate, input_tokens: int, max_output_tokens: int) -> Decimal:
    return token_cost(
        input_tokens=input_tokens,
        output_tokens=max_output_tokens,
        input_per_million=rate.input_credits_per_million,
        output_per_million=rate.output_credits_per_million,
    )


def _open_holds(org: Organization, **filters: object) -> Decimal:
    total = Reservation.objects.filter(organization=org, status=Reservation.Status.ACTIVE, **filters).aggregate(
        total=Sum("amount")
    )["total"]
    return total or Decimal(0)


def specialist_spent(*, org: Organization, specialist_id: uuid.UUID, since: datetime) -> Decimal:
    total = LedgerEntry.objects.filter(
        organization=org, kind=LedgerEntry.Kind.USAGE, specialist_id=specialist_id, created_at__gte=since
    ).aggregate(total=Sum("amount"))["total"]
    return -(total or Decimal(0))


def reserve(
    *,
    org: Organization,
    model: str,
    input_tokens: int,
    max_output_tokens: int,
    specialist_id: uuid.UUID | None = None,
    specialist_name: str = "",
    specialist_limit: Decimal | None = None,
    session_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    rate: ModelRate | None = None,
    reservation_id: uuid.UUID | None = None,
) -> Hold:
    """Holds the call's worst case, or refuses with the contract's 402 (in its order).
    ``rate`` saves a lookup when the caller has the model's active rate at hand."""
    with transaction.atomic():
        return _reserve(
            org=org,
            rate=rate if rate is not None and rate.active else active_rate(model),
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            specialist_id=specialist_id,
            specialist_name=specialist_name,
            specialist_limit=specialist_limit,
            session_id=session_id,
            message_id=message_id,
            user_id=user_id,
            reservation_id=reservation_id or uuid.uuid4(),
        )


def _reserve(
    *,
    org: Organization,
    rate: ModelRate,
    input_tokens: int,
    max_output_tokens: int,
    specialist_id: uuid.UUID | None,
    specialist_name: str,
    specialist_limit: Decimal | None,
    session_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    reservation_id: uuid.UUID,
) -> Hold:
    model = rate.model
    hold = worst_case_cost(rate=rate, input_tokens=input_tokens, max_output_tokens=max_output_tokens)
    account = _locked_account(org)
    circuit = getattr(account.organization, "circuit", None)
    if circuit is not None and circuit.state == Circuit.State.OPEN:
        raise CircuitOpenError(reason=circuit.reason, opened_at=circuit.opened_at)
    available = account.balance - account.reserved
    if hold > available:
        raise InsufficientCreditsError(required=hold, available=available)
    _, period_end = period_bounds(timezone.now())
    budget = account.organization.monthly_budget
    if budget is not None:
        committed = account.period_spent + account.reserved
        if committed >= budget:
            raise BudgetExhaustedError(scope="org_budget", limit=budget, spent=committed, reset_at=period_end)
    if specialist_id is not None and specialist_limit is not None:
        committed = specialist_spent(org=org, specialist_id=specialist_id, since=account.period_start) + _open_holds(
            org, specialist_id=specialist_id
        )
        if committed >= specialist_limit:
            raise BudgetExhaustedError(
                scope="specialist_budget", limit=specialist_limit, spent=committed, reset_at=period_end
            )
    account.reserved = q(account.reserved + hold)
    account.save(update_fields=["reserved", "updated_at"])
    reservation = Reservation.objects.create(
        id=reservation_id,
        organization=org,
        amount=hold,
        model=model,
        input_credits_per_million=rate.input_credits_per_million,
        output_credits_per_million=rate.output_credits_per_million,
        specialist_id=specialist_id,
        specialist_name=specialist_name[:200],
        session_id=session_id,
        message_id=message_id,
        user_id=user_id,
    )
    return Hold(reservation_id=reservation.id, amount=hold, rate=rate)


def settle(*, reservation_id: uuid.UUID, input_tokens: int, output_tokens: int, description: str = "") -> Charge:
    """Charges the real cost (provider-reported usage), releases the rest of the hold, writes one
    usage entry. A cost above the hold comes out of the available balance as far as it goes.
    Settling twice charges once."""
    with transaction.atomic():
        reservation = Reservation.objects.select_for_update().get(pk=reservation_id)
        account = _locked_account(reservation.organization_id)
        if reservation.status != Reservation.Status.ACTIVE:
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
        account.reserved = q(account.reserved - reservation.amount)
        charge = min(cost, account.balance - account.reserved)
        account.period_spent = q(account.period_spent + charge)
        entry = _ledger(
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
        )
        reservation.status = Reservation.Status.SETTLED
        reservation.charged = charge
        reservation.ledger_entry = entry
        reservation.closed_at = timezone.now()
        reservation.save(update_fields=["status", "charged", "ledger_entry", "closed_at"])
        evaluate_alerts(org=account.organization, account=account)
        return Charge(credits=charge, balance=account.balance, ledger_entry_id=entry.pk)


@transaction.atomic
def release(*, reservation_id: uuid.UUID) -> None:
    """Gives a hold back without charging (the call never reached the model)."""
    reservation = Reservation.objects.select_for_update().filter(pk=reservation_id).first()
    if reservation is None or reservation.status != Reservation.Status.ACTIVE:
        return
    account = _locked_account(reservation.organization_id)
    account.reserved = q(account.reserved - reservation.amount)
    account.save(update_fields=["reserved", "updated_at"])
    reservation.status = Reservation.Status.RELEASED
    reservation.charged = Decimal(0)
    reservation.closed_at = timezone.now()
    reservation.save(update_fields=["status", "charged", "closed_at"])


def release_stale_reservations(*, older_than: datetime | None = None) -> int:
    """Releases holds whose call never settled (a crashed worker). Each is released at most once."""
    cutoff = older_than or timezone.now() - settings.RESERVATION_TTL
    ids = list(
        Reservation.objects.filter(status=Reservation.Status.ACTIVE, created_at__lt=cutoff).values_list("id", flat=True)
    )
    for reservation_id in ids:
        release(reservation_id=reservation_id)
    return len(ids)


# --- alerts -----------------------------------------------------------------------------------


def _raise_alert(
    *, org: Organization, kind: str, threshold: Decimal | None, period_start: datetime, message: str
) -> bool:
    """Creates the alert (once per period for budget and low-balance kinds); emails after commit."""
    try:
        with transaction.atomic():
            BudgetAlert.objects.create(
                organization=org, kind=kind, threshold=threshold, period_start=period_start, message=message
            )
    except IntegrityError:  # already raised this period
        return False
    if org.billing_email:
        recipient = org.billing_email
        transaction.on_commit(lambda: _send_alert_email(recipient, message, org.pk))
    return True


def _send_alert_email(recipient: str, message: str, org_id: object) -> None:
    try:
        send_mail(f"LeanCore: {message}", message, None, [recipient])
    except Exception:  # an email outage must not break billing
        logger.exception("Could not send the billing alert email to org %s", org_id)


def evaluate_alerts(*, org: Organization, account: CreditAccount) -> list[str]:
    """Raises the budget (50/80/100 %) and low-balance alerts, each once per period."""
    start, _ = period_bounds(timezone.now())
    raised: list[str] = []
    if org.monthly_budget is not None and org.monthly_budget > 0:
        used = account.period_spent * 100 / org.monthly_budget
        for threshold in BUDGET_THRESHOLDS:
            if used >= threshold and _raise_alert(
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
        and _raise_alert(
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


def acknowledge_alerts(*, org: Organization, user: object, alert_ids: list[uuid.UUID] | None, all_: bool) -> int:
    queryset = BudgetAlert.objects.filter(organization=org, acknowledged_at__isnull=True)
    if not all_:
        queryset = queryset.filter(pk__in=alert_ids or [])
    return queryset.update(acknowledged_at=timezone.now(), acknowledged_by=user)


# --- circuit ----------------------------------------------------------------------------------


@transaction.atomic
def set_circuit(*, org: Organization, actor: object | None, state: str | None, reason: str = "") -> Circuit:
    circuit, _ = Circuit.objects.select_for_update().get_or_create(organization=org)
    target = state or (Circuit.State.CLOSED if circuit.state == Circuit.State.OPEN else Circuit.State.OPEN)
    changed = target != circuit.state
    circuit.state = target
    circuit.reason = reason
    if target == Circuit.State.OPEN and changed:
        circuit.opened_at = timezone.now()
        circuit.opened_by = actor
    elif target == Circuit.State.CLOSED:
        circuit.opened_at = None
        circuit.opened_by = None
    circuit.save()
    CircuitEvent.objects.create(organization=org, state=target, reason=reason, actor=actor)
    if target == Circuit.State.OPEN and changed:
        who = getattr(actor, "email", "an operator")
        message = f"Spending for {org.name} was stopped by {who}" + (f": {reason}" if reason else ".")
        start, _ = period_bounds(timezone.now())
        _raise_alert(org=org, kind=BudgetAlert.Kind.CIRCUIT_OPENED, threshold=None, period_start=start, message=message)
    return circuit


# --- model rates ------------------------------------------------------------------------------

RATE_FIELDS = {
    "model": "model",
    "provider": "provider",
    "displayName": "display_name",
    "inputCreditsPerMillion": "input_credits_per_million",
    "outputCreditsPerMillion": "output_credits_per_million",
    "contextWindow": "context_window",
    "maxOutputTokens": "max_output_tokens",
    "active": "active",
}
REQUIRED_RATE_FIELDS = (
    "model",
    "provider",
    "displayName",
    "inputCreditsPerMillion",
    "outputCreditsPerMillion",
    "contextWindow",
)


@transaction.atomic
def load_model_rates(*, rows: list[dict]) -> tuple[int, int]:
    """Upserts rates from the documented JSON shape. Returns (created, updated)."""
    created = updated = 0
    providers = set(ModelRate.Provider.values)
    for index, row in enumerate(rows):
        missing = [name for name in REQUIRED_RATE_FIELDS if name not in row]
        if missing:
            raise ValueError(f"Row {index}: missing {', '.join(missing)}.")
        if row["provider"] not in providers:
            raise ValueError(f"Row {index}: provider must be one of {sorted(providers)}.")
        values = {RATE_FIELDS[key]: value for key, value in row.items() if key in RATE_FIELDS and key != "model"}
        for key in ("input_credits_per_million", "output_credits_per_million"):
            values[key] = q(Decimal(str(values[key])))
            if values[key] < 0:
                raise ValueError(f"Row {index}: rates must not be negative.")
        _, was_created = ModelRate.objects.update_or_create(model=row["model"], defaults=values)
        created += was_created
        updated += not was_created
    return created, updated


BUNDLED_RATES = Path(__file__).resolve().parent / "data" / "model_rates.json"


def load_bundled_rates() -> tuple[int, int]:
    """The rates shipped with the product (also loaded by a data migration)."""
    return load_model_rates(rows=json.loads(BUNDLED_RATES.read_text()))
