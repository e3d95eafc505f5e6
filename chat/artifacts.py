"""Artifacts: what a specialist saves in a workspace with the built-in ``save_artifact`` tool, and
the workspace's list of them."""

from __future__ import annotations

import uuid

from chat.models import Artifact
from workspaces.models import Workspace


def save_artifact(
    *,
    org_id: uuid.UUID,
    workspace_id: uuid.UUID,
    session_id: uuid.UUID | None,
    specialist_id: uuid.UUID | None,
    title: str,
    content: str,
    kind: str = "document",
) -> Artifact | None:
    """What a specialist saves with ``save_artifact``, in a workspace of its own org (None: gone)."""
    workspace = Workspace.objects.for_org(org_id).filter(pk=workspace_id).first()
    if workspace is None:
        return None
    return Artifact.objects.create(
        organization_id=workspace.organization_id,
        workspace=workspace,
        title=(title or "Untitled")[:200],
        kind=(kind or "document")[:50],
        content=content,
        session_id=session_id,
        specialist_id=specialist_id,
    )
