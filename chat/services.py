"""Chat writes: starting a turn (validation, session, messages, the first hold), recording its
progress and its end. The async engine (chat/engine.py) calls these through sync_to_async."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from accounts.models import User
from billing import services as billing
from billing.models import ModelRate
from chat.context import ToolBinding, build_request
from chat.models import Attachment, ChatSession, Message
from chat.providers.base import ProviderRequest, estimate_request_tokens
from chat.tools import tool_plan
from leancore.api.errors import NotFoundError, PermissionDeniedError, ValidationFailed
from orgs.context import OrgContext
from orgs.models import Organization, Role
from specialists.errors import SpecialistInactiveError
from specialists.models import Specialist

MAX_MESSAGE_CHARS = 100_000
TITLE_CHARS = 60
STUCK_AFTER = timedelta(minutes=10)


@dataclass(slots=True)
class PreparedTurn:
    org: Organization
    session_id: uuid.UUID
    user_message_id: uuid.UUID
    message_id: uuid.UUID
    specialist_id: uuid.UUID
    specialist_name: str
    specialist_limit: Decimal | None
    user_id: uuid.UUID
    provider: str
    request: ProviderRequest
    bindings: dict[str, ToolBinding]
    reservation_id: uuid.UUID
    group: str
    workspace_id: uuid.UUID | None = None


def session_title(message: str) -> str:
    """The first message, cut at a word boundary. No model call."""
    text = " ".join(message.split())
    if len(text) <= TITLE_CHARS:
        return text or "New chat"
    cut = text[:TITLE_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def can_read_session(context: OrgContext, session: ChatSession, user: User) -> bool:
    return session.created_by_id == user.pk or context.has_role(Role.ADMIN)


def _specialist(context: OrgContext, specialist_id: Any) -> Specialist:
    specialist = (
        Specialist.objects.alive()
        .filter(organization=context.org, pk=specialist_id)
        .annotate(has_tools=Exists(Specialist.tools.through.objects.filter(specialist_id=OuterRef("pk"))))
        .first()
    )
    if specialist is None:
        raise ValidationFailed("specialistId", "Not found in this organization.")
    if specialist.status != Specialist.Status.ACTIVE:
        raise SpecialistInactiveError
    return specialist


def _session(context: OrgContext, user: User, session_id: Any, specialist: Specialist) -> ChatSession:
    session = ChatSession.objects.filter(organization=context.org, pk=session_id).first()
    if session is None or not can_read_session(context, session, user):
        raise ValidationFailed("sessionId", "Not found in this organization.")
    if session.specialist_id != specialist.pk:
        raise ValidationFailed("sessionId", "This session belongs to another specialist.")
    session.organization = context.org  # the same row: no second read
    return session


def _workspace(context: OrgContext, workspace_id: Any) -> Any:
    if workspace_id is None:
        return None
    from workspaces.models import Workspace

    workspace = Workspace.objects.filter(organization=context.org, pk=workspace_id).first()
    if workspace is None:
        raise ValidationFailed("workspaceId", "Not found in this organization.")
    return workspace


def _attachments(context: OrgContext, ids: list[Any]) -> list[Attachment]:
    if not ids:
        return []
    try:
        ids = [uuid.UUID(str(value)) for value in ids]
    except ValueError as exc:
        raise ValidationFailed("attachmentIds", "Must be a list of ids (UUIDs).") from exc
    found = list(Attachment.objects.filter(organization=context.org, pk__in=ids))
    if len(found) != len(set(ids)):
        raise ValidationFailed("attachmentIds", "Not found in this organization.")
    return found


def _documents(session: ChatSession) -> list[tuple[str, str]]:
    """The text of the workspace's files, for a workspace session."""
    if not session.workspace_id:
        return []
    from workspaces.models import WorkspaceFile

    files = WorkspaceFile.objects.filter(workspace_id=session.workspace_id).order_by("created_at")
    return [(name, text) for name, text in files.values_list("filename", "text") if text]


def plan_request(
    *, specialist: Specialist, session: ChatSession, user_message: Message, history: list[Message] | None = None
) -> tuple[ProviderRequest, dict[str, ToolBinding], ModelRate]:
    rate = billing.active_rate(specialist.model)
    specs, bindings = tool_plan(specialist, in_workspace=bool(session.workspace_id))
    request = build_request(
        specialist=specialist,
        rate=rate,
        session=session,
        user_message=user_message,
        tools=specs,
        documents=_documents(session),
        history=history,
    )
    return request, bindings, rate


def _prepared(
    *,
    session: ChatSession,
    specialist: Specialist,
    user_message: Message,
    assistant_id: uuid.UUID,
    user_id: uuid.UUID,
    reservation_id: uuid.UUID,
    plan: tuple[ProviderRequest, dict[str, ToolBinding], ModelRate],
) -> PreparedTurn:
    request, bindings, rate = plan
    return PreparedTurn(
        org=session.organization,
        session_id=session.pk,
        user_message_id=user_message.pk,
        message_id=assistant_id,
        specialist_id=specialist.pk,
        specialist_name=specialist.name,
        specialist_limit=specialist.monthly_credit_limit,
        user_id=user_id,
        provider=rate.provider,
        request=request,
        bindings=bindings,
        reservation_id=reservation_id,
        group=session.group_name,
        workspace_id=session.workspace_id,
    )


def reserve_call(
    turn: PreparedTurn, *, rate: ModelRate | None = None, reservation_id: uuid.UUID | None = None
) -> uuid.UUID:
    """The hold for one model call of the turn (the first is taken when the turn starts)."""
    hold = billing.reserve(
        rate=rate,
        reservation_id=reservation_id,
        org=turn.org,
        model=turn.request.model,
        input_tokens=estimate_request_tokens(turn.request),
        max_output_tokens=turn.request.max_output_tokens,
        specialist_id=turn.specialist_id,
        specialist_name=turn.specialist_name,
        specialist_limit=turn.specialist_limit,
        session_id=turn.session_id,
        message_id=turn.message_id,
        user_id=turn.user_id,
    )
    return hold.reservation_id


@transaction.atomic
def start_turn(
    *,
    context: OrgContext,
    user: User,
    specialist_id: Any,
    message: str,
    session_id: Any = None,
    workspace_id: Any = None,
    attachment_ids: list[Any] | None = None,
    queued: bool = False,
) -> PreparedTurn:
    """Validates, creates the session and both messages, and holds the first call's worst case.
    Any refusal (400/402/409) rolls all of it back."""
    if not message or not message.strip():
        raise ValidationFailed("message", "This field may not be blank.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ValidationFailed("message", f"At most {MAX_MESSAGE_CHARS} characters.")
    specialist = _specialist(context, specialist_id)
    workspace = _workspace(context, workspace_id)
    if session_id:
        session = _session(context, user, session_id, specialist)
        if workspace is not None and session.workspace_id != workspace.pk:
            raise ValidationFailed("workspaceId", "This session belongs to another workspace.")
    else:
        session = ChatSession.objects.create(
            organization=context.org,
            specialist=specialist,
            workspace=workspace,
            created_by=user,
            title=session_title(message),
            message_count=2,
            last_message_at=timezone.now(),
        )
    attachments = _attachments(context, attachment_ids or [])
    reservation_id = uuid.uuid4()
    now = timezone.now()
    user_message, assistant = Message.objects.bulk_create(
        [
            Message(session=session, role=Message.Role.USER, content=message, created_at=now),
            Message(
                session=session,
                role=Message.Role.ASSISTANT,
                status=Message.Status.QUEUED if queued else Message.Status.RUNNING,
                started_at=None if queued else now,
                reservation_id=reservation_id,
                created_at=now + timedelta(microseconds=1),  # strictly after the user's message
            ),
        ]
    )
    user_message.has_attachments = bool(attachments)  # read without a query when it has none
    if attachments:
        user_message.attachments.set(attachments)
        Attachment.objects.filter(pk__in=[a.pk for a in attachments], session__isnull=True).update(session=session)
    if session_id:
        ChatSession.objects.filter(pk=session.pk).update(
            message_count=F("message_count") + 2, last_message_at=timezone.now(), updated_at=timezone.now()
        )
    history = None if session_id else [user_message]  # a new session's history is this message
    request, bindings, rate = plan_request(
        specialist=specialist, session=session, user_message=user_message, history=history
    )
    turn = _prepared(
        session=session,
        specialist=specialist,
        user_message=user_message,
        assistant_id=assistant.pk,
        user_id=user.pk,
        reservation_id=reservation_id,
        plan=(request, bindings, rate),
    )
    reserve_call(turn, rate=rate, reservation_id=reservation_id)
    return turn


def load_queued_turn(*, message_id: uuid.UUID) -> PreparedTurn | None:
    """For the worker: marks a queued assistant message running and rebuilds its turn.
    Returns None when the message is no longer queued (already run, or failed)."""
    with transaction.atomic():
        assistant = (
            Message.objects.select_for_update(of=("self",))
            .select_related("session__specialist", "session__organization")
            .filter(pk=message_id)
            .first()
        )
        if assistant is None or assistant.status != Message.Status.QUEUED:
            return None
        assistant.status = Message.Status.RUNNING
        assistant.started_at = timezone.now()
        assistant.save(update_fields=["status", "started_at"])
    session = assistant.session
    specialist = session.specialist
    user_message = (
        session.messages.filter(role=Message.Role.USER, created_at__lte=assistant.created_at)
        .order_by("-created_at")
        .first()
    )
    return _prepared(
        session=session,
        specialist=specialist,
        user_message=user_message,
        assistant_id=assistant.pk,
        user_id=session.created_by_id,
        reservation_id=assistant.reservation_id,
        plan=plan_request(specialist=specialist, session=session, user_message=user_message),
    )


def finish_message(
    *,
    message_id: uuid.UUID,
    content: str,
    tool_calls: list[dict[str, Any]],
    input_tokens: int,
    output_tokens: int,
    credits: Decimal,
    finish_reason: str = "",
    error_code: str = "",
    error: str = "",
) -> None:
    now = timezone.now()
    Message.objects.filter(pk=message_id).update(
        content=content,
        tool_calls=tool_calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        credits=credits,
        finish_reason=finish_reason,
        status=Message.Status.FAILED if error_code else Message.Status.COMPLETED,
        error_code=error_code,
        error=error,
        completed_at=now,
    )
    ChatSession.objects.filter(messages__pk=message_id).update(last_message_at=now, updated_at=now)


def finish_turn(
    *,
    reservation_id: uuid.UUID,
    input_tokens: int,
    output_tokens: int,
    message_id: uuid.UUID,
    content: str,
    tool_calls: list[dict[str, Any]],
    prior_input_tokens: int,
    prior_output_tokens: int,
    prior_credits: Decimal,
    finish_reason: str,
) -> billing.Charge:
    """Settles the turn's last model call and completes its message, in one transaction."""
    with transaction.atomic():
        charge = billing.settle(reservation_id=reservation_id, input_tokens=input_tokens, output_tokens=output_tokens)
        finish_message(
            message_id=message_id,
            content=content,
            tool_calls=tool_calls,
            input_tokens=prior_input_tokens + input_tokens,
            output_tokens=prior_output_tokens + output_tokens,
            credits=prior_credits + charge.credits,
            finish_reason=finish_reason,
        )
    return charge


def fail_stuck_turns(*, older_than: timedelta = STUCK_AFTER) -> int:
    """A turn whose worker died stays 'running': fail it with a reason (its hold is released by
    the stale-reservation sweep)."""
    cutoff = timezone.now() - older_than
    return Message.objects.filter(
        role=Message.Role.ASSISTANT, status=Message.Status.RUNNING, started_at__lt=cutoff
    ).update(
        status=Message.Status.FAILED,
        error_code="worker_lost",
        error="The worker stopped while running this turn. Nothing more was billed; please send it again.",
        completed_at=timezone.now(),
    )


def fail_queued_message(*, message_id: uuid.UUID, code: str, detail: str) -> None:
    """Fails a turn that could not run and gives its hold back."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return
    if message.reservation_id:
        billing.release(reservation_id=message.reservation_id)
    Message.objects.filter(pk=message_id, status__in=[Message.Status.QUEUED, Message.Status.RUNNING]).update(
        status=Message.Status.FAILED, error_code=code, error=detail, completed_at=timezone.now()
    )


@transaction.atomic
def delete_session(*, context: OrgContext, user: User, session: ChatSession) -> None:
    if not can_read_session(context, session, user):
        raise NotFoundError
    if session.created_by_id != user.pk and not context.has_role(Role.ADMIN):
        raise PermissionDeniedError("Only the session's owner or an admin may delete it.")
    session.delete()
