"""A list's per-row counts (``core.row_counts.related_count``): the right number for each row of the
page, counted from the related table alone."""

from __future__ import annotations

import pytest

from core.row_counts import related_count
from tests.conftest import client_for, make_workspace_file
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def _files(owner, workspace: Workspace, n: int) -> None:
    for i in range(n):
        make_workspace_file(workspace, uploaded_by=owner, filename=f"f{i}.txt")


def test_each_row_counts_its_own_related_rows(org, owner):
    busy, quiet, _ = (Workspace.objects.create(organization=org, name=name, created_by=owner) for name in "BQE")
    _files(owner, busy, 30)
    _files(owner, quiet, 2)
    answer = client_for(owner).get("/workspaces?ordering=-fileCount").json()
    assert [(row["name"], row["fileCount"], row["threadCount"]) for row in answer["results"]] == [
        ("B", 30, 0),
        ("Q", 2, 0),
        ("E", 0, 0),
    ]
    assert [row["fileCount"] for row in client_for(owner).get("/workspaces?ordering=fileCount").json()["results"]] == [
        0,
        2,
        30,
    ]


def test_the_count_reads_the_related_table_alone():
    """No join back to the listed table and no grouping: a count grouped through that join let
    PostgreSQL read the whole related table for every row of a page when one row held most of it."""
    sql = str(Workspace.objects.across_orgs("the query's text").annotate(n=related_count(Workspace, "files")).query)
    subquery = sql[sql.index("(SELECT") : sql.index(') AS "n"')]
    assert subquery.replace('"', "").startswith("(SELECT COUNT(*) AS count FROM workspaces_workspacefile U0 WHERE"), sql
    assert "GROUP BY" not in subquery
    assert "workspaces_workspace " not in subquery.replace('"', "")


def test_only_a_reverse_foreign_key_is_counted():
    with pytest.raises(ValueError, match="not a reverse foreign key"):
        related_count(Workspace, "created_by")
