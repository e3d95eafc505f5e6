"""No N+1: every list endpoint answers in a bounded number of queries whatever the page holds.

The list endpoints are derived from the URLconf (every route whose GET is a viewset's list of a page)
and checked against the OpenAPI schema (every GET that answers a page of ``count`` and ``results``): a
new list endpoint is tested the day it lands, and fails here until ``Rows`` can grow its page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import services as billing
from billing.models import BudgetAlert, CreditPackage, ModelRate
from chat.models import Artifact, ChatSession, Message
from core.crypto import encrypt_json
from core.list_routes import list_routes, list_url
from mcps.models import CatalogEntry, Connection, Tool
from orgs.models import ApiKey
from tasks.models import Project, Task
from tests.conftest import add_member, client_for, make_org, make_specialist, make_workspace_file
from webhooks.models import Delivery, Event, Webhook
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

LISTS = sorted(list_routes())


def test_the_list_endpoints_are_those_that_answer_a_page_in_the_schema():
    """The derivation misses nothing: the schema's every GET that answers ``{count, results}`` is one
    of them, and each is tested below (``Rows`` grows its page)."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    paged = set()
    for path, operations in schema["paths"].items():
        content = operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        body = content.get("application/json", {}).get("schema", {})
        body = components[body["$ref"].rsplit("/", 1)[-1]] if "$ref" in body else body
        if {"count", "results"} <= set(body.get("properties", {})):
            paged.add(path)
    assert set(LISTS) == paged
    assert len(LISTS) >= 20
    _check_every_list_can_grow_its_page()


def _check_every_list_can_grow_its_page() -> None:
    missing = sorted(set(LISTS) - set(Rows.ADDERS))
    assert missing == [], f"list endpoints whose page this test cannot grow (add them to Rows.ADDERS): {missing}"
    assert sorted(set(Rows.ADDERS) - set(LISTS)) == [], "Rows.ADDERS names endpoints that are gone"


def test_a_list_endpoint_missing_from_the_table_would_fail(monkeypatch):
    """The check fires: an endpoint without its way to grow the page is named."""
    monkeypatch.delitem(Rows.ADDERS, "/orgs/{orgId}/webhooks/{id}/deliveries")
    with pytest.raises(AssertionError, match=re.escape("/orgs/{orgId}/webhooks/{id}/deliveries")):
        _check_every_list_can_grow_its_page()


def _url(path: str, org, parents: dict[str, Any]) -> str:
    """The list's URL: the org's id, and the id of the parent object named by the segment before it
    (``mcps/{id}/tools`` → the connection)."""
    return list_url(path, org_id=org.pk, parent_ids={segment: parent.pk for segment, parent in parents.items()})


def _webhook(org, **extra):
    return Webhook.all_orgs.create(
        organization=org,
        url="https://hooks.example.com/leancore",
        events=["alert.raised"],
        secret_encrypted=encrypt_json({"secret": "whsec_test"}),
        **extra,
    )


def _delivery(org, webhook) -> None:
    event = Event.all_orgs.create(organization=org, type="ping", body="{}")
    Delivery.all_orgs.create(organization=org, webhook=webhook, event=event, due_at=timezone.now())


def _api_key(org, created_by) -> None:
    prefix = uuid.uuid4().hex[:8]
    ApiKey.all_orgs.create(
        organization=org, name=f"k{prefix}", prefix=prefix, secret_hash="0" * 64, role="member", created_by=created_by
    )


@pytest.fixture
def populated(org, owner):
    connection = Connection.all_orgs.create(organization=org, name="c", url="http://127.0.0.1:9/mcp", transport="sse")
    tools = [Tool.all_orgs.create(organization=org, connection=connection, name=f"t{i}") for i in range(6)]
    for i in range(6):
        specialist = make_specialist(org, name=f"S{i}")
        specialist.tools.set(tools)
        session = ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=owner, title=f"s{i}")
        Message.all_orgs.create(session=session, role="user", content="x")
        hold = billing.reserve(org=org, model="local", input_tokens=1, max_output_tokens=1, specialist_id=specialist.pk)
        billing.settle(reservation_id=hold.reservation_id, input_tokens=1, output_tokens=1)
    workspace = Workspace.all_orgs.create(organization=org, name="w", created_by=owner)
    project = Project.all_orgs.create(organization=org, name="p", workspace=workspace, created_by=owner)
    for i in range(6):
        session = ChatSession.all_orgs.create(
            organization=org, specialist=specialist, created_by=owner, title=f"w{i}", workspace=workspace
        )
        make_workspace_file(workspace, uploaded_by=owner, filename=f"f{i}.txt")
        Artifact.all_orgs.create(organization=org, workspace=workspace, title=f"a{i}", content="c", session=session)
        Task.all_orgs.create(
            organization=org, project=project, title=f"t{i}", created_by=owner, assignee_specialist=specialist
        )
    billing.set_circuit(org=org, actor=owner, state="open", reason="x")
    billing.set_circuit(org=org, actor=owner, state="closed", reason="x")
    webhook = _webhook(org, created_by=owner)
    for _ in range(6):
        _api_key(org, owner)
        _delivery(org, webhook)
    return {"mcps": connection, "workspaces": workspace, "webhooks": webhook}


@pytest.mark.parametrize("path", LISTS)
def test_list_query_count_is_bounded(path, org, owner, populated, django_assert_max_num_queries):
    client = client_for(owner)
    url = _url(path, org, populated)
    with django_assert_max_num_queries(8):
        response = client.get(url)
    assert response.status_code == 200, (url, response.content)
    assert response.json()["count"] >= 1, url


# --- constant, not just bounded: the same number of queries at N rows and at 10×N rows ---------

N = 3


class Rows:
    """Adds rows to the list a path shows, each with related rows of its own (a specialist with its
    own tools, a task with its own assignees…), so that a lookup per row would show as more queries."""

    # the list endpoint -> the method that adds one row to its page
    ADDERS: dict[str, str] = {
        "/orgs": "_orgs",
        "/users": "_users",
        "/specialists": "_specialists",
        "/api/chat/sessions": "_api_chat_sessions",
        "/billing/credits/usage": "_billing_credits_usage",
        "/billing/model-rates": "_billing_model_rates",
        "/billing/packages": "_billing_packages",
        "/billing/alerts": "_billing_alerts",
        "/mcp/catalog": "_mcp_catalog",
        "/orgs/{orgId}/api-keys": "_api_keys",
        "/orgs/{orgId}/mcps": "_orgs_org_mcps",
        "/orgs/{orgId}/mcps/{id}/tools": "_orgs_org_mcps_conn_tools",
        "/orgs/{orgId}/webhooks": "_webhooks",
        "/orgs/{orgId}/webhooks/{id}/deliveries": "_webhook_deliveries",
        "/workspaces": "_workspaces",
        "/workspaces/{id}/threads": "_workspaces_ws_threads",
        "/workspaces/{id}/artifacts": "_workspaces_ws_artifacts",
        "/workspaces/{id}/files": "_workspaces_ws_files",
        "/projects": "_projects",
        "/tasks": "_tasks",
    }

    def __init__(self, org, owner, parents: dict[str, Any]) -> None:
        self.org, self.owner, self.parents = org, owner, parents
        self.connection, self.workspace, self.webhook = parents["mcps"], parents["workspaces"], parents["webhooks"]
        self.serial = 0

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def _specialist(self):
        i = self._next()
        specialist = make_specialist(self.org, name=f"Grown {i}")
        specialist.tools.set(
            [
                Tool.all_orgs.create(organization=self.org, connection=self.connection, name=f"g{i}-{k}")
                for k in range(2)
            ]
        )
        return specialist

    def _session(self, workspace=None):
        specialist = self._specialist()
        session = ChatSession.all_orgs.create(
            organization=self.org,
            specialist=specialist,
            created_by=add_member(self.org),
            title="s",
            workspace=workspace,
        )
        Message.all_orgs.create(session=session, role="user", content="x")
        return session

    def add(self, path: str, count: int) -> None:
        adder: Callable[[], None] = getattr(self, self.ADDERS[path])
        for _ in range(count):
            adder()

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
        BudgetAlert.all_orgs.create(
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
        connection = Connection.all_orgs.create(
            organization=self.org, name="c", url="http://127.0.0.1:9/mcp", transport="sse"
        )
        Tool.all_orgs.create(organization=self.org, connection=connection, name="t")

    def _orgs_org_mcps_conn_tools(self) -> None:
        Tool.all_orgs.create(organization=self.org, connection=self.connection, name=f"more-{self._next()}")

    def _api_keys(self) -> None:
        _api_key(self.org, add_member(self.org))

    def _webhooks(self) -> None:
        _webhook(self.org, created_by=add_member(self.org))

    def _webhook_deliveries(self) -> None:
        _delivery(self.org, self.webhook)

    def _workspaces(self) -> None:
        Workspace.all_orgs.create(organization=self.org, name="w", created_by=add_member(self.org))

    def _workspaces_ws_threads(self) -> None:
        self._session(workspace=self.workspace)

    def _workspaces_ws_artifacts(self) -> None:
        session = self._session(workspace=self.workspace)
        Artifact.all_orgs.create(
            organization=self.org,
            workspace=self.workspace,
            title="a",
            content="c",
            session=session,
            specialist=session.specialist,
        )

    def _workspaces_ws_files(self) -> None:
        make_workspace_file(self.workspace, uploaded_by=add_member(self.org), filename=f"g{self._next()}.txt")

    def _projects(self) -> None:
        workspace = Workspace.all_orgs.create(organization=self.org, name="pw", created_by=self.owner)
        Project.all_orgs.create(organization=self.org, name="p", workspace=workspace, created_by=add_member(self.org))

    def _tasks(self) -> None:
        workspace = Workspace.all_orgs.create(organization=self.org, name="tw", created_by=self.owner)
        project = Project.all_orgs.create(organization=self.org, name="p", workspace=workspace, created_by=self.owner)
        # at most one assignee a task: a person and a specialist in turn
        assignee = (
            {"assignee_user": add_member(self.org)} if self._next() % 2 else {"assignee_specialist": self._specialist()}
        )
        Task.all_orgs.create(
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
    connection = Connection.all_orgs.create(organization=org, name="c", url="http://127.0.0.1:9/mcp", transport="sse")
    workspace = Workspace.all_orgs.create(organization=org, name="w", created_by=owner)
    parents = {"mcps": connection, "workspaces": workspace, "webhooks": _webhook(org, created_by=owner)}
    rows = Rows(org, owner, parents)
    client = client_for(owner)
    url = _url(path, org, parents) + "?pageSize=100"
    rows.add(path, N)
    few, listed_few, _ = _queries(client, url)
    rows.add(path, 9 * N)
    many, listed_many, statements = _queries(client, url)
    assert listed_many - listed_few == 9 * N, url  # the page grew by every row added
    assert listed_many <= 100, url  # all of them on the one page
    assert many == few, (url, few, many, statements)
