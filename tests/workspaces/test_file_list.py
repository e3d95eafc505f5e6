"""A workspace's files page says whether each file's text was extracted without reading the text
(up to UPLOAD_EXTRACT_MAX_CHARS a file: a page of 100 could read 100 of them)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext

from core.serializers import PlainReadModelSerializer
from tests.conftest import client_for, make_workspace_file
from workspaces.models import Workspace, WorkspaceFile

pytestmark = pytest.mark.django_db


def test_the_files_page_reads_whether_a_file_has_text_not_the_text(org, owner):
    workspace = Workspace.objects.create(organization=org, name="W", created_by=owner)
    make_workspace_file(workspace, uploaded_by=owner, filename="with.md", text="x" * 5000)
    make_workspace_file(workspace, uploaded_by=owner, filename="image.png")
    client = client_for(owner)
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(f"/workspaces/{workspace.pk}/files?pageSize=100").json()
    assert {row["filename"]: row["textExtracted"] for row in answer["results"]} == {"with.md": True, "image.png": False}
    page = next(query["sql"] for query in queries if "LIMIT" in query["sql"] and "workspacefile" in query["sql"])
    assert '"workspaces_workspacefile"."text" = ' in page  # the flag is computed by the database
    assert '"workspaces_workspacefile"."text",' not in page  # the text is not read
    assert 'file"."text" FROM' not in page


def test_the_files_page_is_read_as_rows_and_its_workspace_not_read(org, owner):
    """No file becomes a model instance (a page of 100 built 100, each with its descriptors), and the
    workspace the page belongs to is not read: the org's files that name it show it is the org's."""
    workspace = Workspace.objects.create(organization=org, name="W", created_by=owner)
    for index in range(3):
        make_workspace_file(workspace, uploaded_by=owner, filename=f"f{index}.md", text="words")
    made: list[object] = []

    def count(sender: type, instance: object, **kwargs: object) -> None:
        made.append(instance)

    post_init.connect(count, sender=WorkspaceFile)
    try:
        with CaptureQueriesContext(connection) as queries:
            answer = client_for(owner).get(f"/workspaces/{workspace.pk}/files").json()
    finally:
        post_init.disconnect(count, sender=WorkspaceFile)
    assert [row["filename"] for row in answer["results"]] == ["f2.md", "f1.md", "f0.md"]
    assert answer["results"][0]["textExtracted"] is True
    assert made == []
    assert not [q["sql"] for q in queries if 'FROM "workspaces_workspace"' in q["sql"]]  # its files name it


def _rows_serializer(*names: str) -> type[PlainReadModelSerializer[WorkspaceFile]]:
    """A files serializer that reads its pages as rows (tuples of columns, not the JSON text
    PostgreSQL would write for such fields: core.row_json), with these fields."""

    class Rows(PlainReadModelSerializer[WorkspaceFile]):
        pages_read_as_rows = True
        _row_json_found = None  # the tuple path, whatever the fields

        class Meta:
            model = WorkspaceFile
            fields = list(names)

    return Rows


def _one_file(org, owner) -> QuerySet[WorkspaceFile]:
    workspace = Workspace.objects.create(organization=org, name="W", created_by=owner)
    make_workspace_file(workspace, uploaded_by=owner, filename="a.md", text="secret words")
    return WorkspaceFile.objects.for_org(org)


def test_a_deferred_column_of_a_pages_row_is_never_read_silently(org, owner):
    files, rows_of = _one_file(org, owner), _rows_serializer("id", "filename")
    rows = rows_of.read_page_rows(files.defer("text"))
    assert rows is not None
    (row,) = rows
    assert row.filename == "a.md"  # type: ignore[attr-defined]  # a named tuple of the model's columns
    with pytest.raises(AttributeError, match="deferred"):
        _ = row.text  # type: ignore[attr-defined]  # deferred: raises instead of giving None
    assert rows_of.read_page_rows(files.only("id", "filename")) is None  # models


def test_a_page_whose_fields_name_a_deferred_column_is_read_as_models(org, owner):
    files, with_text = _one_file(org, owner), _rows_serializer("id", "filename", "text")
    assert with_text.read_page_rows(files.defer("text")) is None  # models: Django loads the text
    assert with_text.read_page_rows(files.defer("filename")) is None
    assert with_text.read_page_rows(files.defer("size")) is not None  # a column no field names
