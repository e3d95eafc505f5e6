"""No N+1: every list endpoint answers in a bounded number of queries whatever the page holds."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import services as billing
from billing.models import BudgetAlert, CreditPackage, ModelRate
from chat.models import Artifact, ChatSession, Message
from mcps.models import CatalogEntry, Connection, Tool
from tasks.models import Project, Task
from tests.conftest import add_member, client_for, make_org, make_specialist
from workspaces.models import Workspace, WorkspaceFile

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


# --- constant, not just bounded: the same number of queries at N rows and at 10×N rows ---------

N = 3


class Rows:
    """Adds rows to the list a path shows, each with related rows of its own (a specialist with its
    own tools, a task with its own assignees…), so that a lookup per row would show as more queries."""

    def __init__(self, org, owner, connection, workspace) -> None:
        self.org, self.owner, self.connection, self.workspace = org, owner, connection, workspace
        self.serial = 0

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def _specialist(self):
        i = self._next()
        specialist = make_specialist(self.org, name=f"Grown {i}")
        specialist.tools.set(
            [Tool.objects.create(organization=self.org, connection=self.connection, name=f"g{i}-{k}") for k in range(2)]
        )
        return specialist

    def _session(self, workspace=None):
        specialist = self._specialist()
        session = ChatSession.objects.create(
            organization=self.org,
            specialist=specialist,
            created_by=add_member(self.org),
            title="s",
            workspace=workspace,
        )
        Message.objects.create(session=session, role="user", content="x")
        return session

    def add(self, path: str, count: int) -> None:
        for _ in range(count):
            getattr(self, "_" + path.strip("/").replace("{", "").replace("}", "").replace("/", "_").replace("-", "_"))()

    def _orgs(self) -> None:
        make_org(owner=self.owner, name=f"Mine {self._next()}")

    def _users(self) -> None:
        add_member(self.org)

    def _specialists(self) -> None:
        self._specialist()

    def _api_chat_sessions(self) -> None:
        self._session()

    def _billing_credits_usage(self) -> None:
        specialist = self._specialist()
        session = self._session()
        hold = billing.reserve(
            org=self.org,
            model="local",
            input_tokens=1,
            max_output_tokens=1,
            specialist_id=specialist.pk,
            specialist_name=specialist.name,
            session_id=session.pk,
            user_id=session.created_by_id,
        )
        billing.settle(reservation_id=hold.reservation_id, input_tokens=1, output_tokens=1)

    def _billing_model_rates(self) -> None:
        ModelRate.objects.create(
            model=f"grown-{uuid.uuid4().hex[:8]}",
            provider="openai",
            display_name="Grown",
            input_credits_per_million=Decimal(1),
            output_credits_per_million=Decimal(1),
            context_window=1000,
        )

    def _billing_packages(self) -> None:
        CreditPackage.objects.create(name=f"P{self._next()}", credits=Decimal(10), price_cents=100 + self.serial)

    def _billing_alerts(self) -> None:
        BudgetAlert.objects.create(
            organization=self.org,
            kind="circuit_opened",
            period_start=timezone.now(),
            message="m",
            acknowledged_at=timezone.now(),
            acknowledged_by=add_member(self.org),
        )

    def _mcp_catalog(self) -> None:
        i = self._next()
        CatalogEntry.objects.create(key=f"grown-{i}-{uuid.uuid4().hex[:6]}", name=f"G{i}", url_template="https://x/")

    def _orgs_org_mcps(self) -> None:
        connection = Connection.objects.create(
            organization=self.org, name="c", url="http://127.0.0.1:9/mcp", transport="sse"
        )
        Tool.objects.create(organization=self.org, connection=connection, name="t")

    def _orgs_org_mcps_conn_tools(self) -> None:
        Tool.objects.create(organization=self.org, connection=self.connection, name=f"more-{self._next()}")

    def _workspaces(self) -> None:
        Workspace.objects.create(organization=self.org, name="w", created_by=add_member(self.org))

    def _workspaces_ws_threads(self) -> None:
        self._session(workspace=self.workspace)

    def _workspaces_ws_artifacts(self) -> None:
        session = self._session(workspace=self.workspace)
        Artifact.objects.create(
            organization=self.org,
            workspace=self.workspace,
            title="a",
            content="c",
            session=session,
            specialist=session.specialist,
        )

    def _workspaces_ws_files(self) -> None:
        WorkspaceFile.objects.create(
            organization=self.org,
            workspace=self.workspace,
            filename=f"g{self._next()}.txt",
            content_type="text/plain",
            size=1,
            uploaded_by=add_member(self.org),
            file="x",
        )

    def _projects(self) -> None:
        workspace = Workspace.objects.create(organization=self.org, name="pw", created_by=self.owner)
        Project.objects.create(organization=self.org, name="p", workspace=workspace, created_by=add_member(self.org))

    def _tasks(self) -> None:
        workspace = Workspace.objects.create(organization=self.org, name="tw", created_by=self.owner)
        project = Project.objects.create(organization=self.org, name="p", workspace=workspace, created_by=self.owner)
        # at most one assignee a task: a person and a specialist in turn
        assignee = (
            {"assignee_user": add_member(self.org)} if self._next() % 2 else {"assignee_specialist": self._specialist()}
        )
        Task.objects.create(
            organization=self.org, project=project, title="t", created_by=add_member(self.org), **assignee
        )


def _queries(client, url: str) -> tuple[int, int, list[str]]:
    """The queries of one request (after one that warms whatever the server caches): their number,
    the rows listed, and the statements (for the failure message)."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(db_connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content)
    return len(captured), response.json()["count"], [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("path", LISTS)
def test_list_query_count_is_the_same_at_n_and_at_ten_times_n_rows(path, org, owner):
    connection = Connection.objects.create(organization=org, name="c", url="http://127.0.0.1:9/mcp", transport="sse")
    workspace = Workspace.objects.create(organization=org, name="w", created_by=owner)
    rows = Rows(org, owner, connection, workspace)
    client = client_for(owner)
    url = path.format(org=org.pk, conn=connection.pk, ws=workspace.pk) + "?pageSize=100"
    rows.add(path, N)
    few, listed_few, _ = _queries(client, url)
    rows.add(path, 9 * N)
    many, listed_many, statements = _queries(client, url)
    assert listed_many - listed_few == 9 * N, url  # the page grew by every row added
    assert listed_many <= 100, url  # all of them on the one page
    assert many == few, (url, few, many, statements)
