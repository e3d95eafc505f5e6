"""Background chat turns (Django's Tasks API, django-tasks-db backend, ``manage.py db_worker``)."""

from __future__ import annotations

import logging
import uuid

from channels.db import database_sync_to_async
from django.tasks import task

from chat import queued, services
from chat.pipeline import drain

logger = logging.getLogger(__name__)


async def run_queued_message(message_id: uuid.UUID) -> str:
    """Runs one queued assistant message through the turn pipeline. Returns the last event's name.
    The body of ``run_queued_turn``, for jobs of other apps that run a turn as part of their work."""
    try:
        turn = await database_sync_to_async(queued.load_queued_turn)(message_id=message_id)
        if turn is None:
            return "skipped"
        return await drain(turn)
    except Exception as exc:
        # the worker logs the failed job with its traceback; here only what happened to the message
        logger.error("Queued turn %s failed before it could run: %s", message_id, exc)
        await database_sync_to_async(services.fail_queued_message)(
            message_id=message_id, code="llm_unavailable", detail=f"The turn could not run: {exc}"
        )
        raise


@task()
async def run_queued_turn(message_id: str) -> str:
    """The background job of an async chat turn (``POST /api/chat/async``); its argument is the
    message's id as text (a job's arguments are JSON)."""
    return await run_queued_message(uuid.UUID(message_id))
