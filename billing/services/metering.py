"""Metering: hold a call's worst case before it starts (or refuse with the contract's 402),
settle it to the provider's reported usage after."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
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
    ModelRate,
    Reservation,
)
from billing.services import hot_ledger
from billing.services.ledger import locked_account
from billing.services.settlement import locked_hold
from billing.services.spend import key_spent, member_spent, specialist_committed
from core import db, metrics
from core.credits import period_bounds, quantize_credits, token_cost
from orgs.models import Organization


@dataclass(frozen=True)
class Hold:
    reservation_id: uuid.UUID
    amount: Decimal
    rate: ModelRate


def active_rate(model: str) -> ModelRate:
    found = db.rows(
        f"SELECT {db.columns(ModelRate, 'r')} FROM {ModelRate._meta.db_table} r WHERE r.model = %s AND r.active = %s",  # noqa: S608
        [model, True],
        scope=db.AcrossOrgs("model rates are the platform's, no org's"),
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
    last; a key's call is no member's (``user_id`` None: it counts against no member's quota).
    A hold in a transaction of its own commits without waiting for the disk, like a live turn's
    start: a crash of the database a moment later can lose it whole (nothing held, nothing billed);
    on PostgreSQL it is then one round trip, the account's row locked for the server's work alone."""
    if api_key_id is not None and user_id is not None:
        raise ValueError("A call is started by a user or with an API key, not both.")
    if rate is None:
        try:
            rate = active_rate(model)
        except UnknownModelError as exc:  # nothing written, no transaction of ours begun
            metrics.record_refusal(exc)
            raise
    usage_metrics.remember_provider(rate)  # its settlement's metrics, without a query
    new = hot_ledger.NewHold(
        id=reservation_id or uuid.uuid4(),
        org_id=org.pk,
        amount=worst_case_cost(rate=rate, input_tokens=input_tokens, max_output_tokens=max_output_tokens),
        rate=rate,
        specialist_name=specialist_name,
        session_id=session_id,
        message_id=message_id,
    )
    caps = hot_ledger.Caps(specialist_id, specialist_limit, user_id, member_limit, api_key_id, key_limit)
    own = not connection.in_atomic_block
    # On its own (PostgreSQL): one round trip, a transaction of its own
    alone = own and connection.vendor == "postgresql"
    if alone and _hold_in_one_statement(new, caps, alone=True):
        return Hold(reservation_id=new.id, amount=new.amount, rate=rate)
    with transaction.atomic(savepoint=False):
        if own:
            db.commit_without_waiting_for_disk()
        try:
            _reserve(org, new, caps, tried=alone)
            return Hold(reservation_id=new.id, amount=new.amount, rate=rate)
        except BillingRefusal as exc:  # decided before the hold writes
            refusal = exc
    metrics.record_refusal(refusal)
    raise refusal  # outside the block: the caller's transaction stays usable


def _hold_in_one_statement(new: hot_ledger.NewHold, caps: hot_ledger.Caps, *, alone: bool) -> bool:
    now = timezone.now()
    return hot_ledger.hold(new, caps, now=now, period_start=period_bounds(now)[0], alone=alone)


def _reserve(org: Organization, new: hot_ledger.NewHold, caps: hot_ledger.Caps, *, tried: bool) -> None:
    """The hold in the caller's transaction: one conditional statement (two with a cap) unless it was
    ``tried`` already; else (no room: which rule refuses, with its figures, the contract's 402; no
    account yet; SQLite) the account read and locked, the rules checked in their order, the hold
    written."""
    if not tried and connection.vendor == "postgresql" and _hold_in_one_statement(new, caps, alone=False):
        return
    account = locked_account(org)
    _refuse_unless_room(
        account,
        org=org,
        hold=new.amount,
        specialist_id=caps.specialist_id,
        specialist_limit=caps.specialist_limit,
        user_id=caps.user_id,
        member_limit=caps.member_limit,
        api_key_id=caps.api_key_id,
        key_limit=caps.key_limit,
    )
    account.reserved = quantize_credits(account.reserved + new.amount)
    db.update(account, "reserved", "updated_at")
    db.insert(
        Reservation(
            id=new.id,
            organization=org,
            account=account,
            amount=new.amount,
            model=new.rate.model,
            input_credits_per_million=new.rate.input_credits_per_million,
            output_credits_per_million=new.rate.output_credits_per_million,
            specialist_id=caps.specialist_id,
            specialist_name=new.specialist_name[:200],
            session_id=new.session_id,
            message_id=new.message_id,
            user_id=caps.user_id,
            api_key_id=caps.api_key_id,
        )
    )


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
        committed = specialist_committed(org=org, specialist_id=specialist_id, since=account.period_start)
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
            reservation = locked_hold(reservation_id)
            if reservation is None or reservation.status != Reservation.Status.ACTIVE:
                raise Reservation.DoesNotExist(reservation_id)
            rate = ModelRate(
                model=reservation.model,
                input_credits_per_million=reservation.input_credits_per_million,
                output_credits_per_million=reservation.output_credits_per_million,
            )
            extra = quantize_credits(
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
            account.reserved = quantize_credits(account.reserved + extra)
            db.update(account, "reserved", "updated_at")
            reservation.amount = quantize_credits(reservation.amount + extra)
            db.update(reservation, "amount")
            return extra
        except BillingRefusal as exc:  # decided before anything is written
            refusal = exc
    metrics.record_refusal(refusal)
    raise refusal


@transaction.atomic(savepoint=False)
def release(*, reservation_id: uuid.UUID) -> None:
    """Gives a hold back without charging: the call never reached the model, or its turn is over or
    was taken for lost (a call that still ends is charged by its ``settle``)."""
    if connection.vendor == "postgresql":  # one statement: the hold, then its account
        hot_ledger.release(reservation_id=reservation_id, now=timezone.now())
        return
    reservation = locked_hold(reservation_id)
    if reservation is None or reservation.status != Reservation.Status.ACTIVE:
        return
    account = reservation.account
    account.reserved = quantize_credits(account.reserved - reservation.amount)
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
