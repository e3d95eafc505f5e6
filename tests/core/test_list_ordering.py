"""``ordering`` on every list: the schema names the fields each list can be ordered by, and each of
them orders that list, ascending and descending, without an error (the lists derived from the
URLconf, as the query-count test derives them). A page of another model than its view's (a
connection's tools, a workspace's files, a webhook's deliveries) is ordered by its own fields."""

from __future__ import annotations

import re

import pytest

from core.list_routes import list_routes
from tests.conftest import client_for
from tests.core.test_query_counts import _url, populated  # noqa: F401  # the fixture, shared

pytestmark = pytest.mark.django_db

LISTS = sorted(list_routes())


@pytest.fixture(scope="module")
def ordering_names(django_db_blocker) -> dict[str, list[str]]:
    """Each list's ordering names, as its schema's ``ordering`` parameter names them."""
    from django.test import Client

    with django_db_blocker.unblock():
        schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    names = {}
    for path in LISTS:
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        names[path] = re.findall(r"`([A-Za-z][A-Za-z0-9]*)`", parameters["ordering"]["description"])
    return names


@pytest.mark.parametrize("path", LISTS)
def test_every_ordering_the_schema_names_orders_its_list(path, org, owner, populated, ordering_names):  # noqa: F811
    names = ordering_names[path]
    assert names, path
    client = client_for(owner)
    url = _url(path, org, populated)
    count = client.get(url).json()["count"]
    for name in names:
        for term in (name, f"-{name}"):
            response = client.get(url, {"ordering": term})
            assert response.status_code == 200, (url, term, response.content)
            assert response.json()["count"] == count, (url, term)


@pytest.mark.parametrize(
    ("path", "name", "key"),
    [
        ("/orgs/{orgId}/mcps/{id}/tools", "name", "name"),
        ("/workspaces/{id}/files", "filename", "filename"),
        ("/orgs/{orgId}/webhooks/{id}/deliveries", "createdAt", "id"),
    ],
)
def test_a_page_of_another_model_than_its_view_is_ordered_by_its_own_fields(
    path,
    name,
    key,
    org,
    owner,
    populated,  # noqa: F811
    ordering_names,
):
    assert name in ordering_names[path]
    client = client_for(owner)
    url = _url(path, org, populated)
    ascending = [row[key] for row in client.get(url, {"ordering": name, "pageSize": 100}).json()["results"]]
    descending = [row[key] for row in client.get(url, {"ordering": f"-{name}", "pageSize": 100}).json()["results"]]
    assert len(ascending) == 6
    assert descending == ascending[::-1]
    if key == name:
        assert ascending == sorted(ascending)
