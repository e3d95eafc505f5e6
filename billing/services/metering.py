"""Metering: hold a call's worst case before it starts (or refuse with the contract's 402),
settle it to the provider's reported usage after."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import usage_metrics
from billing.errors import (
    BillingRefusal,
    BudgetExhaustedError,
    CircuitOpenError,
    InsufficientCreditsError,
    UnknownModelError,
)
from billing.models import (
    Circuit,
    CreditAccount,
    LedgerEntry,
    ModelRate,
    Reservation,
)
from billing.services.alerts import evaluate_alerts
from billing.services.ledger import account_sql, joined_account, locked_account, roll_period, write_ledger_entry
from billing.services.spend import key_spent, member_spent, open_holds, specialist_spent
from core import db, metrics
from core.credits import period_bounds, q, token_cost
from orgs.models import Organization


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
    found = db.rows(
        f"SELECT {db.columns(ModelRate, 'r')} FROM {ModelRate._meta.db_table} r WHERE r.model = %s AND r.active = %s",  # noqa: S608
        [model, True],
    )
    if not found:
        raise UnknownModelError(model)
    return found[0].take(ModelRate)


def worst_case_cost(*, rate: ModelRate, input_tokens: int, max_output_tokens: int) -> Decimal:
    return token_cost(
        input_tokens=input_tokens,
        output_tokens=max_output_tokens,
        input_per_million=rate.input_credits_per_million,
        output_per_million=rate.output_credits_per_million,
    )


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
    member_limit: Decimal | None = None,
    api_key_id: uuid.UUID | None = None,
    key_limit: Decimal | None = None,
    rate: ModelRate | None = None,
    reservation_id: uuid.UUID | None = None,
) -> Hold:
    """Holds the call's worst case, or refuses with the contract's 402 (in its order).
    ``rate``, when given, is the rate the call is held and later settled at, whatever the model's
    rate row says now (changed or deactivated): a turn's rates are fixed when it is accepted, for
    every call of it; without it, the model's active rate (``unknown_model`` if none). No savepoint of its
    own (it would cost two round trips): a refusal is decided before the hold writes anything and
    raised after the block, so the caller's transaction stays usable. The only writes before it are
    the account's own upkeep (opened if missing, rolled into the current period), which any locked
    read of the account makes; the account stays locked until the caller's transaction ends.
    ``member_limit`` is the monthly cap of ``user_id``'s membership (the caller read it with the
    membership): checked only for a call a user started, and only then is their spend read.
    ``key_limit`` is the monthly cap of the API key ``api_key_id`` a call was started with, checked
    last; a key's call is no member's (``user_id`` None: it counts against no member's quota)."""
    if api_key_id is not None and user_id is not None:
        raise ValueError("A call is started by a user or with an API key, not both.")
    with transaction.atomic(savepoint=False):
        try:
            return _reserve(
                org=org,
                rate=rate if rate is not None else active_rate(model),
                input_tokens=input_tokens,
                max_output_tokens=max_output_tokens,
                specialist_id=specialist_id,
                specialist_name=specialist_name,
                specialist_limit=specialist_limit,
                session_id=session_id,
                message_id=message_id,
                user_id=user_id,
                member_limit=member_limit,
                api_key_id=api_key_id,
                key_limit=key_limit,
                reservation_id=reservation_id or uuid.uuid4(),
            )
        except (BillingRefusal, UnknownModelError) as exc:  # decided before the hold writes
            refusal = exc
    metrics.record_refusal(refusal)
    raise refusal  # outside the block: the caller's transaction stays usable


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
    member_limit: Decimal | None,
    api_key_id: uuid.UUID | None,
    key_limit: Decimal | None,
    reservation_id: uuid.UUID,
) -> Hold:
    model = rate.model
    usage_metrics.remember_provider(rate)  # its settlement's metrics, without a query
    hold = worst_case_cost(rate=rate, input_tokens=input_tokens, max_output_tokens=max_output_tokens)
    account = locked_account(org)
    _refuse_unless_room(
        account,
        org=org,
        hold=hold,
        specialist_id=specialist_id,
        specialist_limit=specialist_limit,
        user_id=user_id,
        member_limit=member_limit,
        api_key_id=api_key_id,
        key_limit=key_limit,
    )
    account.reserved = q(account.reserved + hold)
    db.update(account, "reserved", "updated_at")
    (reservation,) = db.insert(
        Reservation(
            id=reservation_id,
            organization=org,
            account=account,
            amount=hold,
            model=model,
            input_credits_per_million=rate.input_credits_per_million,
            output_credits_per_million=rate.output_credits_per_million,
            specialist_id=specialist_id,
            specialist_name=specialist_name[:200],
            session_id=session_id,
            message_id=message_id,
            user_id=user_id,
            api_key_id=api_key_id,
        )
    )
    return Hold(reservation_id=reservation.id, amount=hold, rate=rate)


def _refuse_unless_room(
    account: CreditAccount,
    *,
    org: Organization,
    hold: Decimal,
    specialist_id: uuid.UUID | None,
    specialist_limit: Decimal | None,
    user_id: uuid.UUID | None,
    member_limit: Decimal | None,
    api_key_id: uuid.UUID | None,
    key_limit: Decimal | None,
) -> None:
    """The contract's 402 refusals, in their order, for holding ``hold`` more on the locked
    ``account`` (a new hold, or a hold grown): raised before anything is written."""
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
        committed = specialist_spent(org=org, specialist_id=specialist_id, since=account.period_start) + open_holds(
            org, specialist_id=specialist_id
        )
        if committed >= specialist_limit:
            raise BudgetExhaustedError(
                scope="specialist_budget", limit=specialist_limit, spent=committed, reset_at=period_end
            )
    if user_id is not None and member_limit is not None:  # under the account's lock: one member's turns serialize
        committed = member_spent(org=org, user_id=user_id, since=account.period_start)
        if committed >= member_limit:
            raise BudgetExhaustedError(scope="member_budget", limit=member_limit, spent=committed, reset_at=period_end)
    if api_key_id is not None and key_limit is not None:  # under the account's lock: one key's turns serialize
        committed = key_spent(org=org, api_key_id=api_key_id, since=account.period_start)
        if committed >= key_limit:
            raise BudgetExhaustedError(scope="api_key_budget", limit=key_limit, spent=committed, reset_at=period_end)


def grow_hold(
    *,
    reservation_id: uuid.UUID,
    input_tokens: int,
    max_output_tokens: int,
    specialist_limit: Decimal | None = None,
    member_limit: Decimal | None = None,
    key_limit: Decimal | None = None,
) -> Decimal:
    """Grows an open hold to the worst case of a call of ``input_tokens`` (at most) and
    ``max_output_tokens``, at the rates it pinned, or refuses with the contract's 402 (in the order
    of ``reserve``) for the difference: a queued turn whose request, built when a worker picks it up,
    may be bigger than what was held at its acceptance. Returns what was added (0 when the hold
    already covers it). Like ``reserve``, a refusal is raised after the block, nothing written."""
    with transaction.atomic(savepoint=False):
        try:
            reservation = _locked_hold(reservation_id)
            if reservation is None or reservation.status != Reservation.Status.ACTIVE:
                raise Reservation.DoesNotExist(reservation_id)
            rate = ModelRate(
                model=reservation.model,
                input_credits_per_million=reservation.input_credits_per_million,
                output_credits_per_million=reservation.output_credits_per_million,
            )
            extra = q(
                worst_case_cost(rate=rate, input_tokens=input_tokens, max_output_tokens=max_output_tokens)
                - reservation.amount
            )
            if extra <= 0:
                return Decimal(0)
            account = reservation.account
            _refuse_unless_room(
                account,
                org=account.organization,
                hold=extra,
                specialist_id=reservation.specialist_id,
                specialist_limit=specialist_limit,
                user_id=reservation.user_id,
                member_limit=member_limit,
                api_key_id=reservation.api_key_id,
                key_limit=key_limit,
            )
            account.reserved = q(account.reserved + extra)
            db.update(account, "reserved", "updated_at")
            reservation.amount = q(reservation.amount + extra)
            db.update(reservation, "amount")
            return extra
        except BillingRefusal as exc:  # decided before anything is written
            refusal = exc
    metrics.record_refusal(refusal)
    raise refusal


def _locked_hold(reservation_id: uuid.UUID) -> Reservation | None:
    """The hold and its account (with its org and circuit), both locked, in one statement; the
    account rolled into the current period."""
    sql = account_sql(
        before=f"{db.columns(Reservation, 'r')}, ",
        source=f"{Reservation._meta.db_table} r JOIN {CreditAccount._meta.db_table} a ON a.id = r.account_id",
        where="r.id = %s",
        locked="r, a",
    )
    found = db.rows(sql, [reservation_id])
    if not found:
        return None
    reservation = found[0].take(Reservation)
    reservation.account = roll_period(joined_account(found[0]))
    return reservation


def settle(*, reservation_id: uuid.UUID, input_tokens: int, output_tokens: int, description: str = "") -> Charge:
    """Charges the real cost (provider-reported usage), releases the rest of the hold, writes one
    usage entry. A cost above the hold comes out of the available balance as far as it goes. A hold
    already given back (its turn was taken for lost while the call went on) is still charged, out of
    the available balance as far as it goes. Settling twice charges once."""
    with transaction.atomic(savepoint=False):
        reservation = _locked_hold(reservation_id)
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
            account.reserved = q(account.reserved - reservation.amount)
        charge = max(Decimal(0), min(cost, account.balance - account.reserved))
        account.period_spent = q(account.period_spent + charge)
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


@transaction.atomic(savepoint=False)
def release(*, reservation_id: uuid.UUID) -> None:
    """Gives a hold back without charging: the call never reached the model, or its turn is over or
    was taken for lost (a call that still ends is charged by its ``settle``)."""
    reservation = _locked_hold(reservation_id)
    if reservation is None or reservation.status != Reservation.Status.ACTIVE:
        return
    account = reservation.account
    account.reserved = q(account.reserved - reservation.amount)
    db.update(account, "reserved", "updated_at")
    reservation.status = Reservation.Status.RELEASED
    reservation.charged = Decimal(0)
    reservation.closed_at = timezone.now()
    db.update(reservation, "status", "charged", "closed_at")


def release_holds_of_message(*, message_id: uuid.UUID, created_before: datetime | None = None) -> int:
    """Gives back every hold still open for one chat message (its turn is over, or its process died);
    with ``created_before``, only those taken before it."""
    found = Reservation.objects.across_orgs("a message's holds, by the message's id (maintenance)").filter(
        message_id=message_id, status=Reservation.Status.ACTIVE
    )
    if created_before is not None:
        found = found.filter(created_at__lt=created_before)
    ids = list(found.values_list("id", flat=True))
    for reservation_id in ids:
        release(reservation_id=reservation_id)
    return len(ids)


def messages_with_open_holds() -> set[uuid.UUID]:
    """The chat messages (turns) that have a hold open: whether each is still going is the turn's
    owner's to say (``chat.metering.release_holds_of_ended_turns``)."""
    found = Reservation.objects.across_orgs("maintenance: every org's open holds").filter(
        status=Reservation.Status.ACTIVE, message_id__isnull=False
    )
    return {message_id for message_id in found.values_list("message_id", flat=True).distinct() if message_id}


def release_stale_reservations(*, older_than: datetime | None = None) -> int:
    """Releases the holds of calls made outside any turn (no message: the specialist wizard's, made
    within one request) that never settled within RESERVATION_TTL (a crashed process). A turn's
    holds are never released for their age: they last while the turn is queued or running. Each is
    released at most once."""
    cutoff = older_than or timezone.now() - settings.RESERVATION_TTL
    ids = list(
        Reservation.objects.across_orgs("maintenance: every org's stale holds")
        .filter(status=Reservation.Status.ACTIVE, message_id__isnull=True, created_at__lt=cutoff)
        .values_list("id", flat=True)
    )
    for reservation_id in ids:
        release(reservation_id=reservation_id)
    return len(ids)
