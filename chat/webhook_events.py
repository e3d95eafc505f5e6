"""Chat's webhook events: ``turn.completed`` and ``turn.failed``, announced in the transaction that
records the turn's end (``webhooks.outbox``), with the assistant message as the API shows it (plus its
``sessionId``). Made only when a webhook of the org takes the event."""

from __future__ import annotations

import uuid

from chat.models import ChatSession, Message
from chat.serializers import MessageSerializer
from webhooks.models import EventType
from webhooks.outbox import enqueue_event


def _shown(*, org_id: uuid.UUID, message_id: uuid.UUID, status: str) -> dict[str, object] | None:
    """The message as the API shows it, if it is (still) in ``status``: a failure recorded after the turn
    was already recorded (the listener left as it was) announces nothing."""
    message = (
        Message.objects.filter(session__organization_id=org_id, pk=message_id, status=status)
        .prefetch_related("attachments")
        .first()
    )
    if message is None:
        return None
    return {**MessageSerializer(message).data, "session_id": message.session_id}


def turn_ended(*, org_id: uuid.UUID, message_id: uuid.UUID, failed: bool) -> None:
    """A turn's assistant message was just recorded completed, or failed."""
    status = Message.Status.FAILED if failed else Message.Status.COMPLETED
    enqueue_event(
        org_id=org_id,
        type=EventType.TURN_FAILED if failed else EventType.TURN_COMPLETED,
        subject_id=message_id,
        data=lambda: _shown(org_id=org_id, message_id=message_id, status=status),
    )


def turn_failed(message: Message) -> None:
    """A turn failed outside the pipeline (its worker lost, its queue time over, its session deleted)."""
    org_id = (
        ChatSession.objects.across_orgs("the session of a message being recorded")
        .filter(pk=message.session_id)
        .values_list("organization_id", flat=True)
        .first()
    )
    if org_id is not None:
        turn_ended(org_id=org_id, message_id=message.pk, failed=True)
