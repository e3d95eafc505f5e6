"""Chat writes outside the turn pipeline (``chat/turns.py`` and ``chat/pipeline.py``): deleting a
session, and the maintenance of turns whose worker died or that could not run."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat import metering, replay, webhook_events
from chat.calls import TurnEvent
from chat.errors import QueueTimeoutError, WorkerLostError
from chat.models import Attachment, ChatSession, Message
from chat.turns import can_read_session
from core.errors import DomainError, InvalidStateError, NotFoundError, PermissionDeniedError
from files.uploads import store_upload
from orgs.context import OrgContext
from orgs.models import Role

logger = logging.getLogger(__name__)

NOTICE_TIMEOUT_SECONDS = 2.0


def _end_turn_log(message_id: uuid.UUID, group: str, code: str, detail: str) -> None:
    """The turn's `error` ends its replay log and reaches the session's WebSocket watchers as its
    own events do, with its id (bounded: a log or channel layer that cannot be reached loses only
    that; the message itself says what happened)."""

    async def end() -> None:
        async with asyncio.timeout(NOTICE_TIMEOUT_SECONDS):
            await replay.end_turn(
                message_id=message_id, group=group, event=TurnEvent("error", {"code": code, "detail": detail})
            )

    try:
        async_to_sync(end)()
    except Exception:
        logger.exception("Could not end the events of turn %s", message_id)


def fail_locked_turn(message: Message, error: type[DomainError] | DomainError) -> None:
    """Fails a turn whose message the caller locked (in its transaction): every hold it still has is
    given back (nothing it may have produced was recorded, so nobody pays for it), the message fails
    with ``error``'s code and detail (``turn.failed`` announced), and once this commits its replay
    log ends with the `error` event, which its WebSocket watchers get as the turn's last event."""
    detail = error.detail if isinstance(error, DomainError) else error.default_detail
    message.status = Message.Status.FAILED
    message.error_code = error.code
    message.error = detail
    message.completed_at = timezone.now()
    message.save(update_fields=["status", "error_code", "error", "completed_at"])
    metering.release_holds_of(message_id=message.pk)
    webhook_events.turn_failed(message)
    group = ChatSession(pk=message.session_id).group_name
    transaction.on_commit(functools.partial(_end_turn_log, message.pk, group, error.code, detail))


def fail_stuck_turns(*, lease: timedelta | None = None) -> int:
    """Fails every running turn whose lease (``heartbeat_at``, renewed while its process lives)
    is older than ``lease`` (TURN_LEASE_SECONDS): the process died. Its holds are released (the
    tokens it may have produced were never recorded, so nobody pays for them), the message fails
    with ``worker_lost``, and its WebSocket watchers get the `error` event. A turn is never run
    again, so nothing is paid twice."""
    cutoff = timezone.now() - (lease or timedelta(seconds=settings.TURN_LEASE_SECONDS))
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    running = Message.objects.across_orgs("maintenance: every org's running turns").filter(
        role=Message.Role.ASSISTANT, status=Message.Status.RUNNING
    )
    failed = 0
    for message_id in list(running.filter(stale).values_list("id", flat=True)):
        with transaction.atomic():
            message = running.filter(stale, pk=message_id).select_for_update(skip_locked=True).first()
            if message is None:  # it beat, ended or is being handled meanwhile
                continue
            fail_locked_turn(message, WorkerLostError)
        failed += 1
    return failed


def queue_cutoff() -> datetime:
    """A queued turn accepted before this has waited past TURN_QUEUE_TIMEOUT."""
    return timezone.now() - timedelta(seconds=settings.TURN_QUEUE_TIMEOUT)


def fail_overdue_queued_turns() -> int:
    """Fails every queued turn that no worker started within TURN_QUEUE_TIMEOUT seconds of its
    acceptance: ``queue_timeout``, its hold given back, nothing billed. A worker that picks one up
    later finds it failed and does not run it."""
    cutoff = queue_cutoff()
    waiting = Message.objects.across_orgs("maintenance: every org's overdue turns").filter(
        role=Message.Role.ASSISTANT, status=Message.Status.QUEUED, created_at__lt=cutoff
    )
    failed = 0
    for message_id in list(waiting.values_list("id", flat=True)):
        with transaction.atomic():
            message = waiting.filter(pk=message_id).select_for_update(skip_locked=True).first()
            if message is None:  # a worker is starting it, or it ended meanwhile
                continue
            fail_locked_turn(message, QueueTimeoutError)
        failed += 1
    return failed


def fail_queued_message(*, message_id: uuid.UUID, error: DomainError) -> None:
    """Fails a turn its worker could not run (loading it raised), as every turn failed outside the
    pipeline is (``fail_locked_turn``); nothing when it ended meanwhile."""
    with transaction.atomic():
        message = (
            Message.objects.across_orgs("a worker's job names its message")
            .select_for_update()
            .filter(pk=message_id, status__in=[Message.Status.QUEUED, Message.Status.RUNNING])
            .first()
        )
        if message is not None:
            fail_locked_turn(message, error)


@transaction.atomic
def delete_session(*, context: OrgContext, session: ChatSession) -> None:
    """Deletes a session and its messages. A turn still running in it refuses (409
    ``invalid_state``): its call goes on and its holds must last until it settles. A queued one is
    failed first, its hold given back. The session's row is locked first, so no turn starts in it
    meanwhile, then its unfinished turns (a worker picking one up waits, or is waited for)."""
    if not can_read_session(context, session):
        raise NotFoundError
    own = context.created(created_by_id=session.created_by_id, created_by_api_key_id=session.created_by_api_key_id)
    if not own and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError("Only the session's owner or an admin may delete it.")
    ChatSession.objects.select_for_update().filter(organization_id=context.org.pk, pk=session.pk).exists()
    unfinished = Message.objects.select_for_update().filter(
        session__organization_id=context.org.pk,
        session_id=session.pk,
        status__in=[Message.Status.QUEUED, Message.Status.RUNNING],
    )
    for message in unfinished:
        if message.status == Message.Status.RUNNING:
            raise InvalidStateError("A turn is running in this session: delete it once the turn has ended.")
        fail_locked_turn(message, InvalidStateError("The session was deleted before this turn ran."))
    session.delete()


def attach_upload(*, context: OrgContext, upload: UploadedFile[bytes], session: ChatSession | None) -> Attachment:
    """A file for the next message (and, with a session, kept with it), checked against the quota;
    uploaded by the caller (a member, or an org API key)."""
    attachment = Attachment(
        organization=context.org, session=session, uploaded_by=context.user, uploaded_by_api_key=context.api_key
    )
    return store_upload(org=context.org, upload=upload, stored=attachment)
