from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from billing import services as billing
from billing.models import CreditAccount
from chat.models import Message
from tasks.jobs import run_task_turn
from tasks.models import Task
from tests.chat.test_resume_api import _body
from tests.chat.test_stream_e2e import parse_sse
from tests.conftest import add_member, assert_problem, client_for, make_specialist
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def test_projects(member, admin_user, org, other_org):
    client = client_for(member)
    workspace = Workspace.all_orgs.create(organization=org, name="W", created_by=member)
    created = client.post("/projects", {"name": "Launch", "workspaceId": str(workspace.pk)}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {"id", "name", "description", "status", "workspaceId", "createdAt", "taskCount"}
    assert (body["status"], body["workspaceId"], body["taskCount"]) == ("active", str(workspace.pk), 0)
    client.post("/tasks", {"title": "t", "projectId": body["id"]}, format="json")
    assert client.get(f"/projects/{body['id']}").json()["taskCount"] == 1
    archived = client.put(f"/projects/{body['id']}", {"status": "archived"}, format="json").json()
    assert archived["status"] == "archived"
    assert client.get("/projects?status=archived").json()["count"] == 1
    assert client.get("/projects?status=active").json()["count"] == 0
    foreign_ws = Workspace.all_orgs.create(
        organization=other_org, name="F", created_by=other_org.memberships.get().user
    )
    bad = client.post("/projects", {"name": "x", "workspaceId": str(foreign_ws.pk)}, format="json")
    assert "workspaceId" in assert_problem(bad, 400, "validation_error")["errors"]
    assert "name" in assert_problem(client.post("/projects", {}, format="json"), 400, "validation_error")["errors"]
    stranger = client_for(add_member(org))
    assert_problem(stranger.delete(f"/projects/{body['id']}"), 403, "permission_denied")
    assert_problem(client_for(other_org.memberships.get().user).get(f"/projects/{body['id']}"), 404, "not_found")
    assert client.delete(f"/projects/{body['id']}").status_code == 204
    assert Task.all_orgs.count() == 0


def test_tasks_crud_filters_and_assignees(member, admin_user, org, other_org, django_assert_max_num_queries):
    client = client_for(member)
    specialist = make_specialist(org)
    project = client.post("/projects", {"name": "P"}, format="json").json()
    first = client.post(
        "/tasks",
        {
            "title": "Write brief",
            "projectId": project["id"],
            "assigneeSpecialistId": str(specialist.pk),
            "dueDate": "2026-12-01",
            "priority": "high",
        },
        format="json",
    )
    assert first.status_code == 201, first.content
    body = first.json()
    assert set(body) == {
        "id",
        "title",
        "description",
        "status",
        "priority",
        "projectId",
        "assigneeUserId",
        "assigneeSpecialistId",
        "dueDate",
        "result",
        "error",
        "sessionId",
        "createdBy",
        "createdAt",
        "updatedAt",
    }
    assert (body["status"], body["priority"], body["dueDate"], body["result"]) == ("todo", "high", "2026-12-01", None)
    second = client.post(
        "/tasks", {"title": "Review", "assigneeUserId": str(admin_user.pk), "dueDate": "2027-01-10"}, format="json"
    ).json()
    with django_assert_max_num_queries(5):
        assert client.get("/tasks").json()["count"] == 2
    assert [t["id"] for t in client.get(f"/tasks?projectId={project['id']}").json()["results"]] == [body["id"]]
    assert [t["id"] for t in client.get(f"/tasks?assigneeUserId={admin_user.pk}").json()["results"]] == [second["id"]]
    assert [t["id"] for t in client.get(f"/tasks?assigneeSpecialistId={specialist.pk}").json()["results"]] == [
        body["id"]
    ]
    assert [t["id"] for t in client.get("/tasks?dueBefore=2026-12-02").json()["results"]] == [body["id"]]
    assert client.get("/tasks?dueBefore=2026-12-01").json()["count"] == 0  # exclusive
    assert client.get("/tasks?status=done").json()["count"] == 0
    assert [t["title"] for t in client.get("/tasks?ordering=dueDate").json()["results"]] == ["Write brief", "Review"]
    # at most one assignee; giving it to a person takes it from the specialist
    both = client.post(
        "/tasks",
        {"title": "x", "assigneeUserId": str(member.pk), "assigneeSpecialistId": str(specialist.pk)},
        format="json",
    )
    assert_problem(both, 400, "validation_error")
    moved = client.put(f"/tasks/{body['id']}", {"assigneeUserId": str(member.pk)}, format="json").json()
    assert (moved["assigneeUserId"], moved["assigneeSpecialistId"]) == (str(member.pk), None)
    outsider = other_org.memberships.get().user
    assert (
        "assigneeUserId"
        in assert_problem(
            client.put(f"/tasks/{body['id']}", {"assigneeUserId": str(outsider.pk)}, format="json"),
            400,
            "validation_error",
        )["errors"]
    )
    assert (
        "assigneeSpecialistId"
        in assert_problem(
            client.post(
                "/tasks", {"title": "x", "assigneeSpecialistId": str(make_specialist(other_org).pk)}, format="json"
            ),
            400,
            "validation_error",
        )["errors"]
    )
    assert (
        "assigneeUserId"
        in assert_problem(
            client.post("/tasks", {"title": "x", "assigneeUserId": "nope"}, format="json"), 400, "validation_error"
        )["errors"]
    )
    assert client.put(f"/tasks/{body['id']}", {"status": "cancelled"}, format="json").json()["status"] == "cancelled"
    assert_problem(client_for(add_member(org)).delete(f"/tasks/{body['id']}"), 403, "permission_denied")
    assert client_for(admin_user).delete(f"/tasks/{body['id']}").status_code == 204


def test_run_refusals(member, org):
    client = client_for(member)
    unassigned = client.post("/tasks", {"title": "x"}, format="json").json()
    assert_problem(client.post(f"/tasks/{unassigned['id']}/run"), 409, "invalid_state")
    specialist = make_specialist(org)
    done = client.post(
        "/tasks", {"title": "x", "assigneeSpecialistId": str(specialist.pk), "status": "done"}, format="json"
    ).json()
    assert_problem(client.post(f"/tasks/{done['id']}/run"), 409, "invalid_state")
    assert_problem(client.post(f"/tasks/{uuid.uuid4()}/run"), 404, "not_found")
    todo = client.post("/tasks", {"title": "x", "assigneeSpecialistId": str(specialist.pk)}, format="json").json()
    billing.set_circuit(org=org, actor=None, state="open", reason="stop")
    assert_problem(client.post(f"/tasks/{todo['id']}/run"), 402, "circuit_open")
    assert Task.all_orgs.get(pk=todo["id"]).status == "todo"
    assert Message.all_orgs.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_task_run_is_a_billed_turn_that_completes_the_task(bundled_data):
    from tests.conftest import make_org, owner_of

    org = make_org(name="Runner")
    owner = owner_of(org)
    client = client_for(owner)
    specialist = make_specialist(org, model="local")
    task = client.post(
        "/tasks",
        {
            "title": "Summarize Q3",
            "description": "Keep it short.",
            "assigneeSpecialistId": str(specialist.pk),
            "dueDate": date(2026, 12, 1).isoformat(),
        },
        format="json",
    ).json()
    started = client.post(f"/tasks/{task['id']}/run")
    assert started.status_code == 202, started.content
    body = started.json()
    assert set(body) == {"taskId", "sessionId", "messageId", "status"}
    assert body["status"] == "queued"
    assert client.get(f"/tasks/{task['id']}").json()["status"] == "in_progress"
    assert_problem(client.post(f"/tasks/{task['id']}/run"), 409, "invalid_state")
    before = CreditAccount.all_orgs.get(organization=org).balance
    async_to_sync(run_task_turn.func)(body["taskId"], body["messageId"])
    done = client.get(f"/tasks/{task['id']}").json()
    assert done["status"] == "done"
    assert done["result"].startswith("[local offline model]")
    assert "Summarize Q3" in done["result"]
    assert done["sessionId"] == body["sessionId"]
    assert CreditAccount.all_orgs.get(organization=org).balance < before
    assert Decimal(Message.all_orgs.get(pk=body["messageId"]).credits) > 0
    # the run's events were kept as any turn's are: replayed whole, then from any id
    replayed = client.get(f"/api/chat/messages/{body['messageId']}/events")
    assert replayed.status_code == 200
    events = parse_sse(_body(replayed))
    assert [event_id for event_id, _, _ in events] == [str(i) for i in range(1, len(events) + 1)]
    assert (events[0][1], events[0][2]["sessionId"]) == ("session", body["sessionId"])
    assert (events[-1][1], events[-1][2]["messageId"]) == ("done", body["messageId"])
    assert "Summarize Q3" in "".join(data["text"] for _, name, data in events if name == "delta")
    rest = client.get(f"/api/chat/messages/{body['messageId']}/events", HTTP_LAST_EVENT_ID="2")
    assert parse_sse(_body(rest)) == events[2:]


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_puts_the_task_back_with_the_error(bundled_data, fake_llm):
    from tests.conftest import make_org, owner_of
    from tests.fakes.llm_server import Scenario

    org = make_org(name="Failer")
    owner = owner_of(org)
    client = client_for(owner)
    specialist = make_specialist(org, model="gpt-4o-mini")
    task = client.post("/tasks", {"title": "x", "assigneeSpecialistId": str(specialist.pk)}, format="json").json()
    body = client.post(f"/tasks/{task['id']}/run").json()
    fake_llm.script(Scenario(status=500), Scenario(status=500))
    async_to_sync(run_task_turn.func)(body["taskId"], body["messageId"])
    back = client.get(f"/tasks/{task['id']}").json()
    assert back["status"] == "todo"
    assert back["error"]


@pytest.mark.django_db(transaction=True)
def test_a_task_run_through_a_real_worker_process(bundled_data):
    from tests.conftest import make_org, owner_of
    from tests.servers import run_worker_batch, server_env

    org = make_org(name="Worker Co")
    owner = owner_of(org)
    client = client_for(owner)
    specialist = make_specialist(org, model="local")
    task = client.post("/tasks", {"title": "Plan", "assigneeSpecialistId": str(specialist.pk)}, format="json").json()
    assert client.post(f"/tasks/{task['id']}/run").status_code == 202
    result = run_worker_batch(server_env())
    assert result.returncode == 0, result.stderr
    assert client.get(f"/tasks/{task['id']}").json()["status"] == "done"
