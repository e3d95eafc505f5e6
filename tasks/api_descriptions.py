"""What each operation of projects and tasks does, for API users (Markdown), where its view's own
``extend_schema`` says nothing; keyed by the operation's path and method as the schema names them
(``leancore.schema.descriptions``). The schema adds who may call it and every error status with its
codes from the error registry: a description says what happens, not which status or code answers."""

from __future__ import annotations

DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("/projects", "get"): (
        "The organization's projects, newest first, paginated, each with its number of tasks (`taskCount`). "
        "Filter by `status` (`active`, `archived`)."
    ),
    ("/projects", "post"): (
        "Creates a project (`status` active unless given) and answers 201. `workspaceId` must name a "
        "workspace of this organization; tasks of the project then run in that workspace."
    ),
    ("/projects/{id}", "get"): "The project with its number of tasks (`taskCount`).",
    ("/projects/{id}", "put"): (
        "Changes only the fields given (`workspaceId: null` detaches the workspace) and answers 200 with the project."
    ),
    ("/projects/{id}", "delete"): (
        "Deletes the project together with all of its tasks and answers 204. Only its creator or an admin may."
    ),
    ("/tasks", "post"): (
        "Creates a task (`status` todo and `priority` medium unless given) and answers 201. It has at most "
        "one assignee: `assigneeUserId` (an active member) or `assigneeSpecialistId`, not both. Ids of the "
        "project, member or specialist must be of this organization (else a validation error naming the "
        "field)."
    ),
    ("/tasks/{id}", "get"): (
        "The task; after a run, `result` holds the specialist's answer (or `error` why it failed) and "
        "`sessionId` the chat session of the last run."
    ),
    ("/tasks/{id}", "put"): (
        "Changes only the fields given and answers 200 with the task. Giving the task to a person removes the"
        " specialist assignee and the other way round; not both in one request."
    ),
    ("/tasks/{id}", "delete"): "Deletes the task and answers 204. Only its creator or an admin may.",
}
