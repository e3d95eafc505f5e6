"""The turn pipeline's one road to billing: every hold, settlement and release of a model call
made for a specialist (chat turns, task runs, the wizard) goes through these functions, inside the
pipeline's prepare and record transactions (or a transaction of their own when called alone)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from billing import services as billing
from billing.models import ModelRate
from chat.models import Message
from chat.providers.base import ProviderRequest, Usage, request_tokens_upper_bound
from orgs.models import Organization

Charge = billing.Charge


@dataclass(frozen=True, slots=True)
class Payer:
    """Who a model call is billed to and what the ledger says about it."""

    org: Organization
    user_id: uuid.UUID | None
    specialist_id: uuid.UUID | None = None
    specialist_name: str = ""
    specialist_limit: Decimal | None = None
    member_limit: Decimal | None = None  # the monthly cap of ``user_id``'s membership (None: none)
    session_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None  # the org API key the turn was started with (``user_id`` None then)
    key_limit: Decimal | None = None  # that key's monthly cap (None: none)


def active_rate(*, model: str) -> ModelRate:
    return billing.active_rate(model)


def hold(
    *, payer: Payer, request: ProviderRequest, rate: ModelRate | None = None, reservation_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Holds one call's worst case (the most input tokens its request can be, whatever its script, and
    ``max_output_tokens``) or refuses with the contract's 402 before anything reaches the model."""
    return billing.reserve(
        rate=rate,
        reservation_id=reservation_id,
        org=payer.org,
        model=request.model,
        input_tokens=request_tokens_upper_bound(request),
        max_output_tokens=request.max_output_tokens,
        specialist_id=payer.specialist_id,
        specialist_name=payer.specialist_name,
        specialist_limit=payer.specialist_limit,
        session_id=payer.session_id,
        message_id=payer.message_id,
        user_id=payer.user_id,
        member_limit=payer.member_limit,
        api_key_id=payer.api_key_id,
        key_limit=payer.key_limit,
    ).reservation_id


def grow_hold(*, payer: Payer, request: ProviderRequest, reservation_id: uuid.UUID) -> Decimal:
    """Grows a call's hold to its request's worst case (a queued turn's request, built when a worker
    picks it up), at the rates the hold pinned, or refuses with the contract's 402."""
    return billing.grow_hold(
        reservation_id=reservation_id,
        input_tokens=request_tokens_upper_bound(request),
        max_output_tokens=request.max_output_tokens,
        specialist_limit=payer.specialist_limit,
        member_limit=payer.member_limit,
        key_limit=payer.key_limit,
    )


def settle(*, reservation_id: uuid.UUID, usage: Usage, description: str = "") -> Charge:
    """Charges the call's reported usage (at the rates pinned by its hold), also when its hold was
    given back meanwhile (its turn was taken for lost); settling twice charges once."""
    return billing.settle(
        reservation_id=reservation_id,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        description=description,
    )


def release(*, reservation_id: uuid.UUID) -> None:
    """Gives back a hold whose call produced nothing (a no-op once settled or released)."""
    billing.release(reservation_id=reservation_id)


def release_holds_of(*, message_id: uuid.UUID) -> int:
    """Gives back every hold a message's turn still has open (its process died mid-turn)."""
    return billing.release_holds_of_message(message_id=message_id)


def release_holds_of_ended_turns() -> int:
    """Maintenance: gives back the holds still open for a message whose turn is over (it ended
    without settling them, or its session was deleted). A turn's holds last as long as the turn,
    however long it waits in the queue or runs: a queued turn's and a running one's stay open (a
    running turn whose process died is failed, its holds with it, by ``fail_stuck_turns``; a queued
    one that waited too long by ``fail_overdue_queued_turns``). A session with a running turn cannot
    be deleted, and its queued turns are failed with it; should a message vanish all the same (its
    organization deleted), its holds are given back only once older than a turn's lease
    (TURN_LEASE_SECONDS): a call still running for it would have settled by then or been failed."""
    holding = billing.messages_with_open_holds()
    if not holding:
        return 0
    found = dict(
        Message.objects.across_orgs("maintenance: the messages of open holds")
        .filter(pk__in=holding)
        .values_list("pk", "status")
    )
    live = {Message.Status.QUEUED, Message.Status.RUNNING}
    lease_ago = timezone.now() - timedelta(seconds=settings.TURN_LEASE_SECONDS)
    released = 0
    for message_id in holding:
        if message_id not in found:
            released += billing.release_holds_of_message(message_id=message_id, created_before=lease_ago)
        elif found[message_id] not in live:
            released += billing.release_holds_of_message(message_id=message_id)
    return released
