"""``ordering`` on every list: the schema names the fields each list can be ordered by, and each of
them orders that list, ascending and descending, without an error (the lists derived from the
URLconf, as the query-count test derives them). A page of another model than its view's (a
connection's tools, a workspace's files, a webhook's deliveries) is ordered by its own fields."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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


def _identity(row: dict) -> str:
    return str(row.get("id")) if "id" in row else json.dumps(row, sort_keys=True)  # model rates: no id


@pytest.mark.parametrize("path", LISTS)
def test_every_ordering_the_schema_names_orders_its_list(path, org, owner, populated, ordering_names):  # noqa: F811
    """Each name is a key of the list's rows; ordered by it both ways the list answers the same rows,
    and in two different orders wherever its rows show two different values under that key."""
    names = ordering_names[path]
    assert names, path
    client = client_for(owner)
    url = _url(path, org, populated)
    listed = client.get(url, {"pageSize": 100}).json()
    assert listed["count"] >= 1, url
    for name in names:
        assert name in listed["results"][0], (url, name)
        with CaptureQueriesContext(connection) as queries:
            ascending, descending = (client.get(url, {"ordering": t, "pageSize": 100}) for t in (name, f"-{name}"))
        # a relation orders by its own column, never by the related model's order (an account's sign-up)
        orders = [query["sql"].rpartition("ORDER BY") for query in queries]
        assert not any(found and "date_joined" in order for _, found, order in orders), (url, name)
        assert ascending.status_code == descending.status_code == 200, (url, name, ascending.content)
        ids = [[_identity(row) for row in response.json()["results"]] for response in (ascending, descending)]
        assert sorted(ids[0]) == sorted(ids[1]) == sorted(_identity(row) for row in listed["results"]), (url, name)
        if len({json.dumps(row[name], sort_keys=True) for row in listed["results"]}) > 1:
            assert ids[0] != ids[1], (url, name)  # the order is applied, not ignored


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


def test_a_value_shown_masked_is_no_ordering(org, owner, populated, ordering_names):  # noqa: F811
    """A connection's URL is shown with its secrets masked: ordering by the stored URL would tell how
    those secrets compare, so ``url`` is no ordering name and is ignored."""
    path = "/orgs/{orgId}/mcps"
    assert "url" not in ordering_names[path]
    client = client_for(owner)
    url = _url(path, org, populated)
    assert client.get(url, {"ordering": "url"}).json() == client.get(url).json()


@pytest.mark.parametrize("path", LISTS)
def test_an_objects_own_route_answers_the_same_with_ordering(path, org, owner, populated, ordering_names):  # noqa: F811
    """``ordering`` on one object's route (a list's row read by its id) changes nothing, whichever name."""
    client = client_for(owner)
    url = _url(path, org, populated)
    rows = client.get(url).json()["results"]
    if "id" not in rows[0]:
        return  # rows without an id of their own (model rates): no route of one
    detail = f"{url}/{rows[0]['id']}"
    plain = client.get(detail)
    if plain.status_code != 200:
        return  # no route of one row here
    for name in ordering_names[path]:
        assert client.get(detail, {"ordering": f"-{name}"}).json() == plain.json(), (detail, name)
