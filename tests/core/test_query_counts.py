"""No N+1: every list endpoint answers in a bounded number of queries whatever the page holds."""

from __future__ import annotations

import pytest

from billing import services as billing
from chat.models import ChatSession, Message
from mcps.models import Connection, Tool
from tasks.models import Project, Task
from tests.conftest import client_for, make_specialist
from workspaces.models import Artifact, Workspace, WorkspaceFile

pytestmark = pytest.mark.django_db

LISTS = [
    "/orgs",
    "/users",
    "/specialists",
    "/api/chat/sessions",
    "/billing/credits/usage",
    "/billing/model-rates",
    "/billing/packages",
    "/billing/alerts",
    "/mcp/catalog",
    "/orgs/{org}/mcps",
    "/orgs/{org}/mcps/{conn}/tools",
    "/workspaces",
    "/workspaces/{ws}/threads",
    "/workspaces/{ws}/artifacts",
    "/workspaces/{ws}/files",
    "/projects",
    "/tasks",
]


@pytest.fixture
def populated(org, owner):
    connection = Connection.objects.create(organization=org, name="c", url="http://127.0.0.1:9/mcp", transport="sse")
    tools = [Tool.objects.create(organization=org, connection=connection, name=f"t{i}") for i in range(6)]
    for i in range(6):
        specialist = make_specialist(org, name=f"S{i}")
        specialist.tools.set(tools)
        session = ChatSession.objects.create(organization=org, specialist=specialist, created_by=owner, title=f"s{i}")
        Message.objects.create(session=session, role="user", content="x")
        hold = billing.reserve(org=org, model="local", input_tokens=1, max_output_tokens=1, specialist_id=specialist.pk)
        billing.settle(reservation_id=hold.reservation_id, input_tokens=1, output_tokens=1)
    workspace = Workspace.objects.create(organization=org, name="w", created_by=owner)
    project = Project.objects.create(organization=org, name="p", workspace=workspace, created_by=owner)
    for i in range(6):
        session = ChatSession.objects.create(
            organization=org, specialist=specialist, created_by=owner, title=f"w{i}", workspace=workspace
        )
        WorkspaceFile.objects.create(
            organization=org,
            workspace=workspace,
            filename=f"f{i}.txt",
            content_type="text/plain",
            size=1,
            uploaded_by=owner,
            file="x",
        )
        Artifact.objects.create(organization=org, workspace=workspace, title=f"a{i}", content="c", session=session)
        Task.objects.create(
            organization=org, project=project, title=f"t{i}", created_by=owner, assignee_specialist=specialist
        )
    billing.set_circuit(org=org, actor=owner, state="open", reason="x")
    billing.set_circuit(org=org, actor=owner, state="closed", reason="x")
    return connection, workspace


@pytest.mark.parametrize("path", LISTS)
def test_list_query_count_is_bounded(path, org, owner, populated, django_assert_max_num_queries):
    client = client_for(owner)
    connection, workspace = populated
    url = path.format(org=org.pk, conn=connection.pk, ws=workspace.pk)
    with django_assert_max_num_queries(8):
        response = client.get(url)
    assert response.status_code == 200, (url, response.content)
    assert response.json()["count"] >= 1, url
