"""Projects and tasks; running a task through its specialist as an async chat turn."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import TypedDict

from django.db import transaction

from accounts.models import User
from chat.models import Message
from chat.turns import start_turn
from core import tracing
from core.errors import InvalidStateError, PermissionDeniedError, ValidationFailed
from orgs.context import OrgContext
from orgs.models import ApiKey, Membership, Organization, Role
from specialists.models import Specialist
from tasks.jobs import finish_task_run, run_task_turn
from tasks.models import Project, Task
from workspaces.models import Workspace


class ProjectFields(TypedDict, total=False):
    """A project's writable fields as the write serializer validates them (ids already resolved
    inside the org)."""

    name: str
    description: str
    status: str
    workspace: Workspace | None


class TaskFields(TypedDict, total=False):
    """A task's writable fields as the write serializer validates them (ids already resolved
    inside the org)."""

    title: str
    description: str
    status: str
    priority: str
    project: Project | None
    assignee_user: User | None
    assignee_specialist: Specialist | None
    due_date: date | None


PROJECT_FIELDS = ("name", "description", "status", "workspace")
TASK_FIELDS = (
    "title",
    "description",
    "status",
    "priority",
    "project",
    "assignee_user",
    "assignee_specialist",
    "due_date",
)


def _require_creator_or_admin(context: OrgContext, row: Project | Task) -> None:
    """Its creator (a member, or the org API key that created it) or an admin."""
    own = context.created(created_by_id=row.created_by_id, created_by_api_key_id=row.created_by_api_key_id)
    if not own and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError("Only its creator or an admin may delete this.")


def create_project(
    *, org: Organization, data: ProjectFields, created_by: User | None, created_by_api_key: ApiKey | None = None
) -> Project:
    values: dict[str, object] = {k: v for k, v in data.items() if k in PROJECT_FIELDS}
    return Project.objects.create(
        organization=org, created_by=created_by, created_by_api_key=created_by_api_key, **values
    )


def update_project(*, project: Project, data: ProjectFields) -> Project:
    for key, value in data.items():
        if key in PROJECT_FIELDS:
            setattr(project, key, value)
    project.save()
    return project


def delete_project(*, context: OrgContext, project: Project) -> None:
    _require_creator_or_admin(context, project)
    project.delete()


def _check_assignees(values: TaskFields) -> None:
    """At most one assignee (the serializer looked both up inside the org)."""
    if values.get("assignee_user") is not None and values.get("assignee_specialist") is not None:
        raise ValidationFailed("assigneeSpecialistId", "A task has at most one assignee.")


def _check_new_assignees(org_id: uuid.UUID, values: TaskFields) -> None:
    """An assignee given now is an active member, or a live specialist, of the task's org (whoever
    calls: the API's fields look them up that way, the admin's forms do not)."""
    person, specialist = values.get("assignee_user"), values.get("assignee_specialist")
    if (
        person is not None
        and not Membership.objects.filter(organization_id=org_id, user=person, status=Membership.Status.ACTIVE).exists()
    ):
        raise ValidationFailed("assigneeUserId", "Not an active member of this organization.")
    if specialist is not None and (specialist.organization_id != org_id or specialist.deleted_at is not None):
        raise ValidationFailed("assigneeSpecialistId", "Not found in this organization.")


def create_task(
    *, org: Organization, data: TaskFields, created_by: User | None, created_by_api_key: ApiKey | None = None
) -> Task:
    _check_assignees(data)
    _check_new_assignees(org.pk, data)
    values: dict[str, object] = {k: v for k, v in data.items() if k in TASK_FIELDS}
    return Task.objects.create(organization=org, created_by=created_by, created_by_api_key=created_by_api_key, **values)


def update_task(*, task: Task, data: TaskFields) -> Task:
    merged: TaskFields = {
        "assignee_user": data.get("assignee_user", task.assignee_user),
        "assignee_specialist": data.get("assignee_specialist", task.assignee_specialist),
    }
    if data.get("assignee_user") is not None and "assignee_specialist" not in data:
        merged["assignee_specialist"] = None  # giving it to a person takes it from the specialist
    if data.get("assignee_specialist") is not None and "assignee_user" not in data:
        merged["assignee_user"] = None
    _check_assignees(merged)
    _check_new_assignees(task.organization_id, data)
    values: dict[str, object] = {k: v for k, v in data.items() if k in TASK_FIELDS}
    for key, value in {**values, **merged}.items():
        setattr(task, key, value)
    task.save()
    return task


def delete_task(*, context: OrgContext, task: Task) -> None:
    _require_creator_or_admin(context, task)
    task.delete()


@dataclass(frozen=True)
class TaskRun:
    task_id: uuid.UUID
    session_id: uuid.UUID
    message_id: uuid.UUID


def task_prompt(task: Task) -> str:
    lines = [f"Task: {task.title}"]
    if task.description:
        lines.append(task.description)
    if task.due_date:
        lines.append(f"Due: {task.due_date.isoformat()}")
    lines.append("Work on this task and answer with the result.")
    return "\n\n".join(lines)


@transaction.atomic
def start_task_run(*, context: OrgContext, task_id: uuid.UUID) -> TaskRun:
    """Holds the turn's worst case (402 here, before anything is queued), queues the turn, and
    moves the task to in_progress."""
    task = (
        Task.objects.select_for_update(of=("self",)).select_related("project").get(organization=context.org, pk=task_id)
    )
    if task.assignee_specialist_id is None:
        raise InvalidStateError("Only a task assigned to a specialist can be run.")
    if task.status != Task.Status.TODO:
        raise InvalidStateError(f"A task that is {task.status} cannot be run.")
    turn = start_turn(
        context=context,
        specialist_id=task.assignee_specialist_id,
        message=task_prompt(task),
        workspace_id=task.project.workspace_id if task.project else None,
        queued=True,
    )
    task.status = Task.Status.IN_PROGRESS
    task.session_id = turn.session_id
    task.run_message_id = turn.message_id
    task.error = ""
    task.save(update_fields=["status", "session", "run_message_id", "error", "updated_at"])
    transaction.on_commit(lambda: run_task_turn.enqueue(str(task.pk), str(turn.message_id), **tracing.job_context()))
    if turn.session_id is None or turn.message_id is None:  # a queued session turn always has both
        raise RuntimeError("A task run started without a session.")
    return TaskRun(task_id=task.pk, session_id=turn.session_id, message_id=turn.message_id)


def recover_failed_runs() -> int:
    """Tasks still in progress whose turn failed (e.g. its worker died) go back to todo."""
    failed = (
        Message.objects.across_orgs("maintenance: every org's failed runs")
        .filter(status=Message.Status.FAILED)
        .values("id")
    )
    ids = list(
        Task.objects.across_orgs("maintenance: every org's failed runs")
        .filter(status=Task.Status.IN_PROGRESS, run_message_id__in=failed)
        .values_list("id", "run_message_id")
    )
    for task_id, message_id in ids:
        if message_id is not None:
            finish_task_run(task_id=task_id, message_id=message_id)
    return len(ids)
