"""Workspace writes: workspaces and their files."""

from __future__ import annotations

import uuid
from typing import TypedDict

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from accounts.models import User
from core.errors import PermissionDeniedError
from files.uploads import store_upload
from orgs.context import OrgContext
from orgs.models import ApiKey, Organization, Role
from workspaces.models import Workspace, WorkspaceFile


def _require_creator_or_admin(
    context: OrgContext, created_by_id: uuid.UUID | None, created_by_api_key_id: uuid.UUID | None, what: str
) -> None:
    """Its creator (a member, or the org API key that made it) or an admin."""
    own = context.created(created_by_id=created_by_id, created_by_api_key_id=created_by_api_key_id)
    if not own and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError(f"Only the {what}'s creator or an admin may do this.")


def create_workspace(
    *,
    org: Organization,
    name: str,
    description: str = "",
    created_by: User | None,
    created_by_api_key: ApiKey | None = None,
) -> Workspace:
    return Workspace.objects.create(
        organization=org,
        created_by=created_by,
        created_by_api_key=created_by_api_key,
        name=name,
        description=description,
    )


class WorkspaceChanges(TypedDict, total=False):
    name: str
    description: str


def update_workspace(*, context: OrgContext, workspace: Workspace, data: WorkspaceChanges) -> Workspace:
    _require_creator_or_admin(context, workspace.created_by_id, workspace.created_by_api_key_id, "workspace")
    for field in ("name", "description"):
        if field in data:
            setattr(workspace, field, data[field])
    workspace.save()
    return workspace


def _delete_stored(files: list[WorkspaceFile]) -> None:
    for item in files:
        item.file.delete(save=False)


@transaction.atomic
def delete_workspace(*, context: OrgContext, workspace: Workspace) -> None:
    """Its files leave storage (after the commit); its chat sessions stay, outside any workspace."""
    _require_creator_or_admin(context, workspace.created_by_id, workspace.created_by_api_key_id, "workspace")
    files = list(workspace.files.all())
    workspace.delete()
    transaction.on_commit(lambda: _delete_stored(files))


def add_file(*, context: OrgContext, workspace: Workspace, upload: UploadedFile[bytes]) -> WorkspaceFile:
    """A file uploaded by the caller (a member, or an org API key)."""
    item = WorkspaceFile(
        organization_id=workspace.organization_id,
        workspace=workspace,
        uploaded_by=context.user,
        uploaded_by_api_key=context.api_key,
    )
    return store_upload(org=workspace.organization, upload=upload, stored=item)


@transaction.atomic
def delete_file(*, context: OrgContext, item: WorkspaceFile) -> None:
    """The uploader, the workspace's creator or an admin."""
    workspace = item.workspace
    if not context.created(
        created_by_id=workspace.created_by_id, created_by_api_key_id=workspace.created_by_api_key_id
    ):
        _require_creator_or_admin(context, item.uploaded_by_id, item.uploaded_by_api_key_id, "file")
    item.delete()
    transaction.on_commit(lambda: item.file.delete(save=False))
