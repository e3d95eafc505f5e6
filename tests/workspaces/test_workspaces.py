from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import Artifact, ChatSession
from chat.turns import start_turn
from orgs.context import OrgContext
from orgs.models import Membership
from tests.conftest import assert_problem, client_for, make_specialist
from workspaces.models import Workspace, WorkspaceFile

pytestmark = pytest.mark.django_db


def _upload(client, workspace_id, name="notes.md", content=b"# Launch\nFriday."):
    return client.post(
        f"/workspaces/{workspace_id}/files",
        {"file": SimpleUploadedFile(name, content, "application/octet-stream")},
        format="multipart",
    )


@pytest.fixture
def workspace(member, org) -> dict:
    response = client_for(member).post("/workspaces", {"name": "Q3 plan", "description": "Budget work"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_list_search_get(member, admin_user, org, workspace, django_assert_max_num_queries):
    assert set(workspace) == {
        "id",
        "name",
        "description",
        "createdBy",
        "createdAt",
        "updatedAt",
        "fileCount",
        "threadCount",
    }
    assert (workspace["fileCount"], workspace["threadCount"], workspace["createdBy"]) == (0, 0, str(member.pk))
    client = client_for(admin_user)
    client.post("/workspaces", {"name": "Hiring"}, format="json")
    with django_assert_max_num_queries(5):
        assert client.get("/workspaces").json()["count"] == 2
    assert [w["name"] for w in client.get("/workspaces?search=budget").json()["results"]] == ["Q3 plan"]
    assert client.get(f"/workspaces/{workspace['id']}").json()["name"] == "Q3 plan"
    assert "name" in assert_problem(client.post("/workspaces", {}, format="json"), 400, "validation_error")["errors"]


def test_update_and_delete_need_creator_or_admin(member, admin_user, org, workspace):
    other = client_for(Membership.all_orgs.create(organization=org, user=make_user_(), role="member").user)
    url = f"/workspaces/{workspace['id']}"
    assert_problem(other.put(url, {"name": "Mine now"}, format="json"), 403, "permission_denied")
    assert_problem(other.delete(url), 403, "permission_denied")
    assert client_for(member).put(url, {"name": "Q3 budget"}, format="json").json()["name"] == "Q3 budget"
    assert (
        client_for(admin_user).put(url, {"description": "by admin"}, format="json").json()["description"] == "by admin"
    )
    assert client_for(admin_user).delete(url).status_code == 204
    assert_problem(client_for(member).get(url), 404, "not_found")


def make_user_():
    from tests.conftest import make_user

    return make_user()


def test_other_org_and_anonymous(owner, other_org, anon, workspace):
    foreign = client_for(other_org.memberships.get().user)
    assert_problem(foreign.get(f"/workspaces/{workspace['id']}"), 404, "not_found")
    assert_problem(foreign.post(f"/workspaces/{workspace['id']}/files", {}, format="multipart"), 404, "not_found")
    assert_problem(anon.get("/workspaces"), 401, "not_authenticated")


def test_files_and_storage(member, admin_user, org, workspace, settings, django_capture_on_commit_callbacks):
    client = client_for(member)
    response = _upload(client, workspace["id"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "filename", "contentType", "size", "uploadedBy", "createdAt", "textExtracted"}
    assert (body["filename"], body["contentType"], body["size"]) == ("notes.md", "text/markdown", 16)
    stored = WorkspaceFile.all_orgs.get(pk=body["id"])
    assert stored.text == "# Launch\nFriday."
    path = Path(stored.file.path)
    assert path.exists()
    assert client.get(f"/workspaces/{workspace['id']}/files").json()["count"] == 1
    assert client.get(f"/workspaces/{workspace['id']}").json()["fileCount"] == 1
    assert_problem(_upload(client, workspace["id"], "x.exe", b"MZ"), 415, "unsupported_media_type")
    settings.UPLOAD_MAX_BYTES = 5
    assert_problem(_upload(client, workspace["id"]), 413, "file_too_large")
    settings.UPLOAD_MAX_BYTES = 1000
    settings.STORAGE_QUOTA_BYTES = 20
    assert_problem(_upload(client, workspace["id"]), 413, "storage_quota_exceeded")
    stranger = client_for(Membership.all_orgs.create(organization=org, user=make_user_(), role="member").user)
    assert_problem(stranger.delete(f"/workspaces/{workspace['id']}/files/{body['id']}"), 403, "permission_denied")
    assert_problem(client.delete(f"/workspaces/{workspace['id']}/files/{uuid.uuid4()}"), 404, "not_found")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/workspaces/{workspace['id']}/files/{body['id']}").status_code == 204
    assert not path.exists()


def test_deleting_a_workspace_removes_its_files_but_keeps_chats(
    member, org, workspace, django_capture_on_commit_callbacks
):
    client = client_for(member)
    file_id = _upload(client, workspace["id"]).json()["id"]
    path = Path(WorkspaceFile.all_orgs.get(pk=file_id).file.path)
    specialist = make_specialist(org)
    session = ChatSession.all_orgs.create(
        organization=org, specialist=specialist, created_by=member, title="t", workspace_id=workspace["id"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/workspaces/{workspace['id']}").status_code == 204
    assert not path.exists()
    session.refresh_from_db()
    assert session.workspace_id is None


def test_workspace_chat_gets_file_text_and_save_artifact(member, org, workspace):
    client = client_for(member)
    _upload(client, workspace["id"], "brief.txt", b"The launch is on Friday.")
    specialist = make_specialist(org)
    context = OrgContext(org=org, membership=Membership.all_orgs.get(user=member, organization=org), is_staff=False)
    turn = start_turn(
        context=context,
        specialist_id=specialist.pk,
        message="When?",
        workspace_id=uuid.UUID(workspace["id"]),
    )
    assert "The launch is on Friday." not in turn.request.system  # outside text: never the instructions
    documents = turn.request.messages[0]
    assert documents.role == "user"
    assert '<document name="brief.txt">\nThe launch is on Friday.\n</document>' in documents.content
    assert [t.name for t in turn.request.tools] == ["save_artifact"]
    assert ChatSession.all_orgs.get(pk=turn.session_id).workspace_id == uuid.UUID(workspace["id"])
    other = Workspace.all_orgs.create(organization=org, name="other", created_by=member)
    response = client.post(
        "/api/chat/async",
        {
            "specialistId": str(specialist.pk),
            "message": "x",
            "sessionId": str(turn.session_id),
            "workspaceId": str(other.pk),
        },
        format="json",
    )
    assert "workspaceId" in assert_problem(response, 400, "validation_error")["errors"]


def test_foreign_workspace_id_is_refused(owner, org, other_org):
    foreign = Workspace.all_orgs.create(organization=other_org, name="f", created_by=other_org.memberships.get().user)
    specialist = make_specialist(org)
    response = client_for(owner).post(
        "/api/chat/async",
        {"specialistId": str(specialist.pk), "message": "x", "workspaceId": str(foreign.pk)},
        format="json",
    )
    assert "workspaceId" in assert_problem(response, 400, "validation_error")["errors"]


def test_threads_and_artifacts(member, admin_user, org, workspace):
    specialist = make_specialist(org)
    mine = ChatSession.all_orgs.create(
        organization=org, specialist=specialist, created_by=member, title="mine", workspace_id=workspace["id"]
    )
    ChatSession.all_orgs.create(
        organization=org, specialist=specialist, created_by=admin_user, title="theirs", workspace_id=workspace["id"]
    )
    ChatSession.all_orgs.create(organization=org, specialist=specialist, created_by=member, title="elsewhere")
    assert [t["title"] for t in client_for(member).get(f"/workspaces/{workspace['id']}/threads").json()["results"]] == [
        "mine"
    ]
    assert client_for(admin_user).get(f"/workspaces/{workspace['id']}/threads").json()["count"] == 2
    assert client_for(member).get(f"/workspaces/{workspace['id']}").json()["threadCount"] == 2
    Artifact.all_orgs.create(
        organization=org,
        workspace_id=workspace["id"],
        title="Plan",
        content="Ship",
        session=mine,
        specialist=specialist,
    )
    artifacts = client_for(member).get(f"/workspaces/{workspace['id']}/artifacts").json()["results"]
    assert artifacts == [
        {
            "id": artifacts[0]["id"],
            "title": "Plan",
            "kind": "document",
            "content": "Ship",
            "sessionId": str(mine.pk),
            "specialistId": str(specialist.pk),
            "createdAt": artifacts[0]["createdAt"],
        }
    ]


def test_an_ordering_by_a_count_on_actions_that_show_no_counts_is_no_server_error(member, workspace):
    """The actions on a workspace's files and its deletion read it without its counts; a stray
    ``?ordering=fileCount`` (the list's ordering, valid on its serializer) still works there."""
    client = client_for(member)
    base = f"/workspaces/{workspace['id']}"
    uploaded = client.post(
        f"{base}/files?ordering=fileCount",
        {"file": SimpleUploadedFile("a.md", b"# A", "application/octet-stream")},
        format="multipart",
    )
    assert uploaded.status_code == 201, uploaded.content
    assert client.get(f"{base}/files?ordering=-threadCount").json()["count"] == 1
    assert client.delete(f"{base}/files/{uploaded.json()['id']}?ordering=threadCount").status_code == 204
    assert client.get("/workspaces?ordering=-fileCount").status_code == 200
    assert client.delete(f"{base}?ordering=fileCount").status_code == 204
