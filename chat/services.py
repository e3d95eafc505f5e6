"""Chat writes outside the turn pipeline (``chat/turns.py`` and ``chat/pipeline.py``): deleting a
session, and the maintenance of turns whose worker died or that could not run."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chat import metering
from chat.models import ChatSession, Message
from chat.turns import can_read_session
from leancore.api.errors import NotFoundError, PermissionDeniedError
from orgs.context import OrgContext
from orgs.models import Role

STUCK_AFTER = timedelta(minutes=10)


def fail_stuck_turns(*, older_than: timedelta = STUCK_AFTER) -> int:
    """A turn whose worker died stays 'running': fail it with a reason (its hold is released by
    the stale-reservation sweep)."""
    cutoff = timezone.now() - older_than
    return Message.objects.filter(
        role=Message.Role.ASSISTANT, status=Message.Status.RUNNING, started_at__lt=cutoff
    ).update(
        status=Message.Status.FAILED,
        error_code="worker_lost",
        error="The worker stopped while running this turn. Nothing more was billed; please send it again.",
        completed_at=timezone.now(),
    )


def fail_queued_message(*, message_id: uuid.UUID, code: str, detail: str) -> None:
    """Fails a turn that could not run and gives its hold back."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return
    if message.reservation_id:
        metering.release(message.reservation_id)
    Message.objects.filter(pk=message_id, status__in=[Message.Status.QUEUED, Message.Status.RUNNING]).update(
        status=Message.Status.FAILED, error_code=code, error=detail, completed_at=timezone.now()
    )


@transaction.atomic
def delete_session(*, context: OrgContext, user: User, session: ChatSession) -> None:
    if not can_read_session(context, session, user):
        raise NotFoundError
    if session.created_by_id != user.pk and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError("Only the session's owner or an admin may delete it.")
    session.delete()
