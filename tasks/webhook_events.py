"""Tasks' webhook event: ``task.finished``, announced in the transaction that ends a task's run
(``webhooks.outbox``), with the task as the API shows it (``done`` with its result, or back to
``todo`` with the error)."""

from __future__ import annotations

from tasks.models import Task
from tasks.serializers import TaskSerializer
from webhooks.models import EventType
from webhooks.outbox import enqueue_event


def task_finished(task: Task) -> None:
    enqueue_event(
        org_id=task.organization_id,
        type=EventType.TASK_FINISHED,
        subject_id=task.pk,
        data=lambda: TaskSerializer(task).data,
    )
