"""The background side of task runs: the specialist works the task as an async chat turn, then
the task is updated with the answer or the error."""

from __future__ import annotations

import uuid

from channels.db import database_sync_to_async
from django.db import transaction
from django.tasks import task
from django.utils import timezone

from chat.jobs import DEFERRED, enqueue_again, run_queued_message
from chat.models import Message
from tasks import webhook_events
from tasks.models import Task


@task()
async def run_task_turn(task_id: str, message_id: str, trace_context: dict[str, str] | None = None) -> str:
    """The background job of a task run; its arguments are the ids as text (a job's are JSON).
    ``trace_context`` (``core.tracing.job_context``) is read by the worker: the job's span continues
    the trace of the request that started the run."""
    task_pk, message_pk = uuid.UUID(task_id), uuid.UUID(message_id)
    try:
        outcome = await run_queued_message(message_pk)
    except BaseException:
        await database_sync_to_async(finish_task_run)(task_id=task_pk, message_id=message_pk)
        raise
    if outcome == DEFERRED:  # the turn waits behind other orgs' turns: the task stays in progress
        await database_sync_to_async(enqueue_again)(run_task_turn, task_id, message_id, trace_context=trace_context)
    else:
        await database_sync_to_async(finish_task_run)(task_id=task_pk, message_id=message_pk)
    return outcome


def finish_task_run(*, task_id: uuid.UUID, message_id: uuid.UUID) -> Task | None:
    """After the turn: done with the answer as result, or back to todo with the error."""
    with transaction.atomic():
        task = (
            Task.objects.across_orgs("the job names its task")
            .select_for_update()
            .filter(pk=task_id, run_message_id=message_id)
            .first()
        )
        if task is None or task.status != Task.Status.IN_PROGRESS:
            return task
        message = Message.objects.across_orgs("the job names its message").filter(pk=message_id).first()
        if message is not None and message.status == Message.Status.COMPLETED:
            task.status, task.result, task.error = Task.Status.DONE, message.content, ""
        else:
            task.status, task.result = Task.Status.TODO, ""  # a failed re-run leaves no old answer behind
            task.error = (message.error if message else "") or "The run failed."
        task.updated_at = timezone.now()
        task.save(update_fields=["status", "result", "error", "updated_at"])
        webhook_events.task_finished(task)
        return task
