"""Task runs: the specialist works the task as an async chat turn, then the task is updated."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.tasks import task

from chat.jobs import run_queued_turn
from tasks import services


@task()
async def run_task_turn(task_id: str, message_id: str) -> str:
    try:
        return await run_queued_turn.func(message_id)
    finally:
        await database_sync_to_async(services.finish_task_run)(task_id=task_id, message_id=message_id)
