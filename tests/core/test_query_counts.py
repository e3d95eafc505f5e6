"""No N+1: every list endpoint answers in a bounded number of queries whatever the page holds."""

from __future__ import annotations

import pytest

from billing import services as billing
from chat.models import ChatSession, Message
from mcps.models import Connection, Tool
from tests.conftest import client_for, make_specialist

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
    billing.set_circuit(org=org, actor=owner, state="open", reason="x")
    billing.set_circuit(org=org, actor=owner, state="closed", reason="x")
    return connection


@pytest.mark.parametrize("path", LISTS)
def test_list_query_count_is_bounded(path, org, owner, populated, django_assert_max_num_queries):
    client = client_for(owner)
    url = path.format(org=org.pk, conn=populated.pk)
    with django_assert_max_num_queries(8):
        response = client.get(url)
    assert response.status_code == 200, (url, response.content)
    assert response.json()["count"] >= 1, url
