"""A workspace's files page says whether each file's text was extracted without reading the text
(up to UPLOAD_EXTRACT_MAX_CHARS a file: a page of 100 could read 100 of them)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import client_for, make_workspace_file
from workspaces.models import Workspace

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
