"""A queued turn's prepare phase, for the worker that picks it up: the turn runs from what it was
accepted with (``Message.frozen_turn``, ``chat.snapshot``), billed to whoever sent it (a user, or the
org API key it was started with, against that key's cap as it is now), or fails ``queue_timeout`` if it
waited longer than TURN_QUEUE_TIMEOUT."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from billing.errors import BillingRefusal
from billing.models import ModelRate, Reservation
from chat import metering, snapshot
from chat.errors import QueueTimeoutError
from chat.inputs import key_limit_of
from chat.models import Message
from chat.services import fail_locked_turn, queue_cutoff
from chat.tools import tool_plan
from chat.turns import PreparedTurn, assemble_turn
from core import metrics
from core.errors import TokenNotValidError
from orgs.selectors import api_key_usable


def _frozen(assistant: Message) -> snapshot.Thawed:
    """The turn as it was accepted. A turn queued before turns were frozen is frozen now from its
    first hold: the model and the two rates it pinned (with that model's provider and context
    window), the specialist's other settings as they are, the sender the hold names (a user, or a key)."""
    if assistant.frozen_turn:
        return snapshot.thaw(assistant.frozen_turn)
    session = assistant.session
    specialist = session.specialist
    first = (
        Reservation.objects.filter(organization_id=session.organization_id, message_id=assistant.pk)
        .order_by("created_at")
        .first()
    )
    rate = metering.active_rate(model=specialist.model)
    if first is not None:
        row = ModelRate.objects.filter(model=first.model).order_by("-active").first() or rate
        rate = ModelRate(
            model=first.model,
            provider=row.provider,
            input_credits_per_million=first.input_credits_per_million,
            output_credits_per_million=first.output_credits_per_million,
            context_window=row.context_window,
            active=True,
        )
        specialist.model = first.model  # an unsaved change: the turn calls the model it was held for
    key_id = first.api_key_id if first is not None else None  # a key's turn has no user
    record = snapshot.freeze(
        specialist=specialist,
        rates=[rate],
        tools=tool_plan(specialist, in_workspace=bool(session.workspace_id)),
        sender_id=None if key_id else (first.user_id if first is not None else None) or session.created_by_id,
        sender_api_key_id=key_id,
    )
    return snapshot.thaw(record)


def load_queued_turn(*, message_id: uuid.UUID) -> PreparedTurn | None:
    """Prepare, for the worker: marks a queued assistant message running and rebuilds its turn from
    what it was accepted with: its frozen settings, and the workspace files and history there were
    then. Its hold was taken at acceptance; should the request now be bigger than what it assumed,
    the hold is grown, in the same transaction, or the turn fails with the 402's code (its hold
    given back). None when the message is no longer queued, when it waited past TURN_QUEUE_TIMEOUT
    (it is then failed ``queue_timeout``, its hold given back), or when its hold could not grow."""
    with transaction.atomic():
        assistant = (
            Message.objects.across_orgs("the worker's job names its message")
            .select_for_update(of=("self",))
            .select_related("session__specialist", "session__organization")
            .filter(pk=message_id)
            .first()
        )
        if assistant is None or assistant.status != Message.Status.QUEUED:
            return None
        if assistant.created_at < queue_cutoff():
            fail_locked_turn(assistant, QueueTimeoutError)
            return None
        session = assistant.session
        user_message = (
            session.messages.filter(role=Message.Role.USER, created_at__lte=assistant.created_at)
            .order_by("-created_at")
            .first()
        )
        if user_message is None or assistant.reservation_id is None:  # queued turns always have both
            raise LookupError(f"Queued message {message_id} has no question or no hold.")
        frozen = _frozen(assistant)
        key_id = frozen.sender_api_key_id
        if key_id is not None and not api_key_usable(org_id=session.organization_id, api_key_id=key_id):
            fail_locked_turn(assistant, TokenNotValidError("The API key that sent this turn was revoked or expired."))
            return None  # revoked at once: a key's queued turns do not run after it, nor cost anything
        turn = assemble_turn(
            session=session,
            specialist=frozen.specialist,
            rate=frozen.rate,
            tools=(frozen.specs, frozen.bindings),
            user_message=user_message,
            assistant_id=assistant.pk,
            user_id=frozen.sender_id,
            api_key_id=frozen.sender_api_key_id,
            key_limit=key_limit_of(session.organization_id, frozen.sender_api_key_id),
            reservation_id=assistant.reservation_id,
            accepted_at=assistant.created_at,
            fallbacks=frozen.fallbacks,
        )
        try:
            metering.grow_hold(payer=turn.payer, request=turn.request, reservation_id=assistant.reservation_id)
        except BillingRefusal as exc:
            metrics.record_turn_refused(provider=turn.provider, model=turn.request.model)
            fail_locked_turn(assistant, type(exc))
            return None
        assistant.status = Message.Status.RUNNING
        assistant.started_at = assistant.heartbeat_at = timezone.now()
        assistant.save(update_fields=["status", "started_at", "heartbeat_at"])
    return turn
