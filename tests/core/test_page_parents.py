"""A page of one parent's rows (a workspace's threads, artifacts and files, a connection's tools, a
webhook's deliveries) reads its parent only when the page is empty: rows of the org that name the
parent show it is the org's. An empty page of the org's own parent is an empty page; of another
org's parent, or of none, 404 — as before, whatever the rows of other orgs."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.list_routes import list_routes
from mcps.models import Connection
from tests.conftest import client_for, make_org
from tests.core.test_query_counts import _url, populated  # noqa: F401  # populated: the fixture
from webhooks.models import Webhook
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

PARENTS = {"workspaces": Workspace, "mcps": Connection, "webhooks": Webhook}  # a path's segment → its model
NESTED = sorted(path for path in list_routes() if "/{id}/" in path)


def _parent_segment(path: str) -> str:
    segments = path.split("/")
    return segments[segments.index("{id}") - 1]


def test_every_nested_list_is_known():
    assert NESTED, "no list of a parent's rows found"
    assert {_parent_segment(path) for path in NESTED} <= set(PARENTS)


@pytest.mark.parametrize("path", NESTED)
def test_a_page_with_rows_does_not_read_its_parent(path, org, owner, populated):  # noqa: F811
    table = PARENTS[_parent_segment(path)]._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        answer = client_for(owner).get(_url(path, org, populated))
    assert answer.status_code == 200, answer.content
    assert answer.json()["count"] >= 1
    assert not [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"]]


@pytest.mark.parametrize("path", NESTED)
def test_an_empty_page_is_the_orgs_own_parents_or_404(path, org, owner, populated):  # noqa: F811
    segment = _parent_segment(path)
    parent = populated[segment]
    other_org = make_org(name="Other")
    copy = type(parent).all_orgs.get(pk=parent.pk)
    copy.pk, copy.organization = uuid.uuid4(), org  # the org's own parent, without rows
    if segment == "mcps":
        copy.url = "http://127.0.0.1:9/other"
    copy.save(force_insert=True)
    client = client_for(owner)
    empty = client.get(_url(path, org, {**populated, segment: copy}))
    assert empty.status_code == 200, empty.content
    assert empty.json() == {"count": 0, "next": None, "previous": None, "results": []}
    type(parent).all_orgs.filter(pk=copy.pk).update(organization=other_org)  # now another org's
    assert client.get(_url(path, org, {**populated, segment: copy})).status_code == 404
    assert (
        client.get(_url(path, org, {**populated, segment: type("Unknown", (), {"pk": uuid.uuid4()})})).status_code
        == 404
    )


@pytest.mark.parametrize("path", NESTED)
def test_another_orgs_parent_with_rows_of_its_own_is_404(path, org, owner, populated):  # noqa: F811
    """The parent and every row naming it moved to another org: the caller's org has none of them."""
    parent = populated[_parent_segment(path)]
    other_org = make_org(name="Other")
    moved = 0
    for relation in type(parent)._meta.related_objects:
        rows = relation.related_model
        if relation.one_to_many and any(field.name == "organization" for field in rows._meta.fields):
            moved += rows.all_orgs.filter(**{relation.field.name: parent}).update(organization=other_org)
    type(parent).all_orgs.filter(pk=parent.pk).update(organization=other_org)
    assert moved >= 1
    assert client_for(owner).get(_url(path, org, populated)).status_code == 404
