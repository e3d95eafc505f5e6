"""The turn pipeline's database phases after the model answered, each one transaction (the async
pipeline in ``chat/pipeline.py`` runs them in a thread):

- between tool rounds: settle the call just made and hold the next (``settle_and_hold_next``);
- *record*: settle the last call, write the ledger and complete the message (``bill_and_complete_message``),
  or fail it, billing what was produced (``bill_and_fail_message``); a failure the database could not
  take (it was away) is written once it answers again (``bill_and_fail_message_when_back``).

Billing is reached only through ``chat.metering``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from billing.errors import BillingRefusal
from chat import metering, webhook_events
from chat.errors import WorkerLostError
from chat.models import ChatSession, Message
from chat.providers.base import Usage
from chat.turns import PreparedTurn, Totals
from core import db, metrics
from core.json_types import JSONReadable, JSONValue

logger = logging.getLogger(__name__)

RECORD_RETRY_SECONDS = 600.0  # how long a failure the database could not take is tried again
RETRY_FIRST_SECONDS = 0.5  # the first wait, doubled after each try up to RETRY_LONGEST_SECONDS
RETRY_LONGEST_SECONDS = 5.0


class SettledAndHeld(NamedTuple):
    """The settled call's charge, and the refusal of the next call's hold (None: it is held)."""

    charge: metering.Charge
    refusal: BillingRefusal | None


def settle_and_hold_next(*, turn: PreparedTurn, usage: Usage, next_hold: uuid.UUID) -> SettledAndHeld:
    """Between tool rounds, one transaction: settles the call just made and holds the next one (as
    ``next_hold``, an id its caller already knows). A refusal of the next hold (402) is returned,
    not raised: the settlement stands either way."""
    refusal = None
    with transaction.atomic(savepoint=False):
        charge = metering.settle(reservation_id=turn.reservation_id, usage=usage, description=turn.description)
        try:  # a refusal writes nothing and leaves the transaction usable: the settlement stands
            metering.hold(payer=turn.payer, request=turn.request, rate=turn.rate, reservation_id=next_hold)
        except BillingRefusal as exc:
            refusal = exc
    return SettledAndHeld(charge, refusal)


def _write_message_and_session(
    turn: PreparedTurn,
    totals: Totals,
    last: tuple[Usage, metering.Charge] | None,
    *,
    finish_reason: str = "",
    error_code: str = "",
    error: str = "",
) -> None:
    """The assistant message with everything the turn produced, ``last`` call included, and its
    session's last activity (a message recorded ends with the webhook event of its turn)."""
    if turn.message_id is None:
        return
    usage, charge = last or (Usage(0, 0), None)
    now = timezone.now()
    where, params = "id = %s", list[db.SqlValue]([turn.message_id])
    if error_code:  # a turn already recorded (the listener left as it was) stays as it was
        where += " AND status IN (%s, %s)"
        params += [Message.Status.QUEUED, Message.Status.RUNNING]
    values = {
        "content": _storable("".join(totals.text)),
        "tool_calls": _storable(totals.tool_calls),
        "input_tokens": totals.input_tokens + usage.input_tokens,
        "output_tokens": totals.output_tokens + usage.output_tokens,
        "credits": totals.credits + (charge.credits if charge else 0),
        "finish_reason": finish_reason,
        "model": totals.model,
        "status": Message.Status.FAILED if error_code else Message.Status.COMPLETED,
        "error_code": error_code,
        "error": error,
        "completed_at": now,
    }
    scope = db.AcrossOrgs("the turn's own message, by its id")
    if not db.update_rows(Message, values, where, params, scope=scope):
        if error_code:  # taken for lost by maintenance while this process could not reach the
            # database: its record replaces that guess (already announced failed, watchers told)
            lost: list[db.SqlValue] = [turn.message_id, Message.Status.FAILED, WorkerLostError.code]
            db.update_rows(Message, values, "id = %s AND status = %s AND error_code = %s", lost, scope=scope)
        return
    org_id = turn.org.pk
    db.update_rows(
        ChatSession,
        {"last_message_at": now, "updated_at": now},
        "id = %s AND organization_id = %s",
        [turn.session_id, org_id],
        scope=db.InOrg(org_id),
    )
    webhook_events.turn_ended(org_id=turn.org.pk, message_id=turn.message_id, failed=bool(error_code))


def _storable(value: JSONReadable) -> JSONValue:
    """Text PostgreSQL can store: a NUL (from a model or a tool result) cannot be, in text or JSON."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Sequence):
        return [_storable(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _storable(item) for key, item in value.items()}
    return value


@transaction.atomic(savepoint=False)
def bill_and_complete_message(
    *, turn: PreparedTurn, totals: Totals, usage: Usage, finish_reason: str
) -> metering.Charge:
    """Record: settles the last call, writes its ledger entry and completes the message."""
    charge = metering.settle(reservation_id=turn.reservation_id, usage=usage, description=turn.description)
    _write_message_and_session(turn, totals, (usage, charge), finish_reason=finish_reason)
    metrics.record_turn_end(turn.meter, provider=turn.provider, model=turn.request.model)
    return charge


@transaction.atomic(savepoint=False)
def bill_and_fail_message(
    *,
    turn: PreparedTurn,
    totals: Totals,
    produced: Usage | None,
    code: str,
    detail: str,
    next_hold: uuid.UUID | None = None,
) -> metering.Charge | None:
    """Record a turn that failed: the call in flight is billed for what it produced (``produced``;
    settling twice charges once), or its hold released; a hold being taken for a next call
    (``next_hold``) is released; the message fails with the reason."""
    metrics.record_turn_end(turn.meter, provider=turn.provider, model=turn.request.model, code=code)
    if next_hold is not None:
        metering.release(reservation_id=next_hold)
    if produced is None:
        metering.release(reservation_id=turn.reservation_id)
        _write_message_and_session(turn, totals, None, error_code=code, error=detail)
        return None
    charge = metering.settle(reservation_id=turn.reservation_id, usage=produced, description=turn.description)
    _write_message_and_session(turn, totals, (produced, charge), error_code=code, error=detail)
    return charge


def database_away(*, exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (it is down or restarting, cut a
    connection, or the pool gave none in time): a write it refused may succeed once it answers."""
    return isinstance(exc, OperationalError | InterfaceError)


def bill_and_fail_message_when_back(
    *,
    turn: PreparedTurn,
    totals: Totals,
    produced: Usage | None,
    code: str,
    detail: str,
    next_hold: uuid.UUID | None = None,
) -> bool:
    """``bill_and_fail_message`` of a turn whose failure the database could not take, tried again while it
    is away (after RETRY_FIRST_SECONDS, then twice as long each time up to RETRY_LONGEST_SECONDS),
    for at most RECORD_RETRY_SECONDS: the call is billed once for what it produced (settling twice
    charges once; a hold maintenance gave back meanwhile is still charged), every hold of the turn is
    closed, the message fails with the reason. True once written. Runs in a thread of its own (the
    turn's stream has ended); a process that stops first leaves the turn to maintenance, which fails
    it ``worker_lost`` when its lease runs out (nothing recorded, nothing billed)."""
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    delay = RETRY_FIRST_SECONDS
    try:
        while True:
            time.sleep(delay)
            try:
                bill_and_fail_message(
                    turn=turn, totals=totals, produced=produced, code=code, detail=detail, next_hold=next_hold
                )
            except Exception as exc:
                if not database_away(exc=exc) or time.monotonic() + delay > deadline:
                    logger.exception("Turn %s: its failure could not be recorded", turn.message_id)
                    return False
                logger.warning("Turn %s: its failure is not recorded yet: %r", turn.message_id, exc)
            else:
                logger.info("Turn %s: its failure is recorded, the database is back", turn.message_id)
                return True
            finally:
                db.release_connections()  # a connection the outage broke is not used again
            delay = min(delay * 2, RETRY_LONGEST_SECONDS)
    finally:
        connections.close_all()  # this thread's own
