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
from orgs.models import Organization, Role
from workspaces.models import Workspace, WorkspaceFile


def _require_creator_or_admin(context: OrgContext, user: User, owner_id: uuid.UUID, what: str) -> None:
    if owner_id != user.pk and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError(f"Only the {what}'s creator or an admin may do this.")


def create_workspace(*, org: Organization, user: User, name: str, description: str = "") -> Workspace:
    return Workspace.objects.create(organization=org, created_by=user, name=name, description=description)


class WorkspaceChanges(TypedDict, total=False):
    name: str
    description: str


def update_workspace(*, context: OrgContext, user: User, workspace: Workspace, data: WorkspaceChanges) -> Workspace:
    _require_creator_or_admin(context, user, workspace.created_by_id, "workspace")
    for field in ("name", "description"):
        if field in data:
            setattr(workspace, field, data[field])
    workspace.save()
    return workspace


def _delete_stored(files: list[WorkspaceFile]) -> None:
    for item in files:
        item.file.delete(save=False)


@transaction.atomic
def delete_workspace(*, context: OrgContext, user: User, workspace: Workspace) -> None:
    """Its files leave storage (after the commit); its chat sessions stay, outside any workspace."""
    _require_creator_or_admin(context, user, workspace.created_by_id, "workspace")
    files = list(workspace.files.all())
    workspace.delete()
    transaction.on_commit(lambda: _delete_stored(files))


def add_file(*, workspace: Workspace, user: User, upload: UploadedFile[bytes]) -> WorkspaceFile:
    item = WorkspaceFile(organization_id=workspace.organization_id, workspace=workspace, uploaded_by=user)
    return store_upload(org=workspace.organization, upload=upload, stored=item)


@transaction.atomic
def delete_file(*, context: OrgContext, user: User, item: WorkspaceFile) -> None:
    """The uploader, the workspace's creator or an admin."""
    if user.pk not in (item.uploaded_by_id, item.workspace.created_by_id):
        _require_creator_or_admin(context, user, item.uploaded_by_id, "file")
    item.delete()
    transaction.on_commit(lambda: item.file.delete(save=False))
