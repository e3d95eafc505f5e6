"""Background chat turns (Django's Tasks API, django-tasks-db backend, ``manage.py db_worker``)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError
from django.tasks import Task, task
from django.utils import timezone

from chat import queued, services, slots
from chat.pipeline import drain
from chat.providers.base import ProviderError
from core import log_context, tracing
from core.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)

DEFERRED = "deferred"


async def run_queued_message(message_id: uuid.UUID, *, request_id: str | None = None) -> str:
    """Runs one queued assistant message through the turn pipeline. Returns the last event's name,
    or ``DEFERRED`` when the turn must wait for other orgs' turns (``chat.slots``): its job is then
    to be enqueued again (``enqueue_again``), nothing else was done. The body of
    ``run_queued_turn``, for jobs of other apps that run a turn as part of their work. Its log lines
    carry the turn's ids (and ``request_id``, the request that queued it), and only its own."""
    with log_context.scope(request_id=request_id):
        return await _run_queued_message(message_id)


async def _run_queued_message(message_id: uuid.UUID) -> str:
    admission = await database_sync_to_async(slots.admit)(message_id=message_id)
    log_context.bind(org_id=admission.org_id, message_id=message_id if admission.org_id else None)
    if admission.deferred:
        return DEFERRED
    try:
        turn = await database_sync_to_async(queued.load_queued_turn)(message_id=message_id)
        if turn is None:
            return "skipped"
        return await drain(turn=turn)
    except Exception as exc:
        # the worker logs the failed job with its traceback; here only what happened to the message
        logger.error("Queued turn %s failed before it could run: %s", message_id, exc)
        # the client reads the error: what went wrong is in the log above, not in the answer
        unreachable = isinstance(exc, OperationalError | InterfaceError)
        error = ServiceUnavailableError() if unreachable else ProviderError("The turn could not run.")
        await database_sync_to_async(services.fail_queued_message)(message_id=message_id, error=error)
        raise
    finally:
        slots.leave(admission)


def enqueue_again(job: Task[..., object], *args: str, trace_context: dict[str, str] | None = None) -> None:
    """A deferred turn's job, back in the queue after the others (``chat.slots``), still in the trace
    of the request that queued it."""
    later = timezone.now() + timedelta(seconds=slots.DEFER_SECONDS)
    carried = {tracing.JOB_CONTEXT_ARGUMENT: trace_context} if trace_context else {}
    job.using(run_after=later, priority=slots.DEFERRED_PRIORITY).enqueue(*args, **carried)


@task()
async def run_queued_turn(
    message_id: str, request_id: str | None = None, trace_context: dict[str, str] | None = None
) -> str:
    """The background job of an async chat turn (``POST /api/chat/async``); its argument is the
    message's id as text (a job's arguments are JSON), and the id of the request that queued it (for
    the log lines of the turn). ``trace_context`` (``core.tracing.job_context``) is read by the
    worker: the job's span continues the request's trace."""
    outcome = await run_queued_message(uuid.UUID(message_id), request_id=request_id)
    if outcome == DEFERRED:
        arguments = (message_id, *([request_id] if request_id else []))
        await database_sync_to_async(enqueue_again)(run_queued_turn, *arguments, trace_context=trace_context)
    return outcome
