"""What a new turn refers to, each looked up inside the org of the request (400 naming the field
when it is not there), and the title of a new session."""

from __future__ import annotations

import uuid
from decimal import Decimal

from chat.models import Attachment, ChatSession
from core.errors import ValidationFailed
from orgs.context import OrgContext
from orgs.models import Role
from orgs.selectors import api_key_credit_limit, member_credit_limit
from specialists.errors import SpecialistInactiveError
from specialists.models import Specialist
from specialists.selectors import alive_with_tool_flag
from workspaces.models import Workspace

TITLE_CHARS = 60


def session_title(message: str) -> str:
    """The first message, cut at a word boundary. No model call."""
    text = " ".join(message.split())
    if len(text) <= TITLE_CHARS:
        return text or "New chat"
    cut = text[:TITLE_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def specialist_of(context: OrgContext, specialist_id: uuid.UUID) -> Specialist:
    allowed = context.allowed_specialist_ids  # a key limited to some specialists: the others are unknown
    specialist = (
        alive_with_tool_flag(org_id=context.org.pk, specialist_id=specialist_id)
        if allowed is None or specialist_id in allowed
        else None
    )
    if specialist is None:
        raise ValidationFailed("specialistId", "Not found in this organization.")
    if specialist.status != Specialist.Status.ACTIVE:
        raise SpecialistInactiveError
    specialist.organization = context.org  # the same row: no second read
    return specialist


def workspace_of(context: OrgContext, workspace_id: uuid.UUID | None) -> Workspace | None:
    if workspace_id is None:
        return None
    workspace: Workspace | None = Workspace.objects.for_org(context.org).filter(pk=workspace_id).first()
    if workspace is None:
        raise ValidationFailed("workspaceId", "Not found in this organization.")
    return workspace


class Unread:
    """A member's cap not read yet."""


UNREAD = Unread()


def caller_limit(context: OrgContext, user_id: uuid.UUID | None) -> Decimal | Unread | None:
    """The caller's monthly credit cap, as read with their membership when the org context was
    resolved (no query); UNREAD when the context holds no membership of theirs."""
    membership = context.membership
    if membership is None or membership.user_id != user_id:
        return UNREAD
    return membership.monthly_credit_limit


def member_limit_of(org_id: uuid.UUID, user_id: uuid.UUID | None) -> Decimal | None:
    """The sender's monthly credit cap, for a turn whose caller's membership was not read with it (a
    queued turn's worker, the wizard); a turn started in a request has it from its org context."""
    return member_credit_limit(org_id=org_id, user_id=user_id) if user_id is not None else None


def key_limit_of(org_id: uuid.UUID, api_key_id: uuid.UUID | None) -> Decimal | None:
    """The monthly credit cap of the API key a turn was started with, as it is now, for a turn whose
    key was not read with it (a queued turn's worker); a turn started in a request has it from its
    org context."""
    return api_key_credit_limit(org_id=org_id, api_key_id=api_key_id) if api_key_id is not None else None


def session_readable(context: OrgContext, session: ChatSession) -> bool:
    """Admins read every session of the org, a member (or a member key) the ones they started; a
    key limited to some specialists reads none of the others'."""
    allowed = context.allowed_specialist_ids
    if allowed is not None and session.specialist_id not in allowed:
        return False
    created = context.created(created_by_id=session.created_by_id, created_by_api_key_id=session.created_by_api_key_id)
    return created or context.has_role(Role.ADMIN)


def _attachable(context: OrgContext, attachment: Attachment) -> bool:
    """An upload the caller may send: one of a session they may read, or one not sent yet that they
    uploaded (an admin of the whole org: anyone's)."""
    if attachment.session is not None:
        return session_readable(context, attachment.session)
    own = context.created(
        created_by_id=attachment.uploaded_by_id, created_by_api_key_id=attachment.uploaded_by_api_key_id
    )
    return own or (context.has_role(Role.ADMIN) and context.allowed_specialist_ids is None)


def attachments_of(context: OrgContext, ids: list[uuid.UUID]) -> list[Attachment]:
    if not ids:
        return []
    found = list(Attachment.objects.for_org(context.org).select_related("session").filter(pk__in=ids))
    if len(found) != len(set(ids)) or not all(_attachable(context, attachment) for attachment in found):
        raise ValidationFailed("attachmentIds", "Not found in this organization.")
    return found
