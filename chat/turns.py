"""The turn pipeline's database phases, each one transaction (the async pipeline in
``chat/pipeline.py`` runs them in a thread, once per phase):

- *prepare*: validate, create the session and both messages, hold the first call's worst case
  (``start_turn``; ``chat.queued.load_queued_turn`` for a worker; ``start_completion`` for a call outside a
  session, the wizard's);
- between tool rounds and *record*: ``chat.records``.

Billing is reached only through ``chat.metering``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import ModelRate
from chat import metering, snapshot
from chat.context import ToolBinding, build_request
from chat.fallbacks import fallback_rates
from chat.inputs import (
    UNREAD,
    Unread,
    attachments_of,
    caller_limit,
    member_limit_of,
    session_readable,
    session_title,
    specialist_of,
    workspace_of,
)
from chat.models import Attachment, ChatSession, Message
from chat.providers.base import ProviderRequest, ToolSpec, Usage
from chat.tools import tool_plan
from core import db, metrics
from core.errors import ValidationFailed
from core.json_types import JSONObject
from orgs.context import OrgContext, require_member
from orgs.models import Organization
from specialists.models import Specialist
from workspaces.models import WorkspaceFile

MAX_MESSAGE_CHARS = 100_000


@dataclass(slots=True)
class PreparedTurn:
    """A turn whose prepare phase has committed: what the model is asked, who pays, the hold of the
    call about to be made. A call outside a session (the wizard) has no session or messages."""

    payer: metering.Payer
    provider: str
    request: ProviderRequest
    reservation_id: uuid.UUID
    rate: ModelRate | None = None  # the rate every call of the turn is held at (None: the active one)
    fallbacks: list[ModelRate] = field(default_factory=list)  # tried in order, each at its rate (chat.fallbacks)
    session_id: uuid.UUID | None = None
    user_message_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    bindings: dict[str, ToolBinding] = field(default_factory=dict)
    group: str = ""  # the session's channel-layer group (WebSocket watchers); "" for none
    workspace_id: uuid.UUID | None = None
    description: str = ""  # the ledger's text for a call outside a session
    meter: metrics.TurnMeter = field(default_factory=metrics.TurnMeter)  # its clock, for the metrics

    @property
    def org(self) -> Organization:
        return self.payer.org

    @property
    def specialist_id(self) -> uuid.UUID | None:
        return self.payer.specialist_id


@dataclass(slots=True)
class Totals:
    """What a turn's settled calls add up to, and what it produced."""

    input_tokens: int = 0
    output_tokens: int = 0
    credits: Decimal = Decimal(0)
    balance: Decimal | None = None
    calls: int = 0
    model: str = ""  # the model of the last call that answered
    text: list[str] = field(default_factory=list)
    tool_calls: list[JSONObject] = field(default_factory=list)  # as stored and served (camelCase keys)

    def add(self, usage: Usage, charge: metering.Charge) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.credits += charge.credits
        self.balance = charge.balance
        self.calls += 1


can_read_session = session_readable  # the one rule of who reads a session (chat.inputs)


def _session(context: OrgContext, session_id: uuid.UUID, specialist: Specialist) -> ChatSession:
    found = db.rows(
        f"SELECT {db.columns(ChatSession, 's')} FROM {ChatSession._meta.db_table} s "  # noqa: S608
        "WHERE s.organization_id = %s AND s.id = %s",
        [context.org.pk, session_id],
        scope=db.InOrg(context.org.pk),
    )
    session = found[0].take(ChatSession) if found else None
    if session is None or not can_read_session(context, session):
        raise ValidationFailed("sessionId", "Not found in this organization.")
    if session.specialist_id != specialist.pk:
        raise ValidationFailed("sessionId", "This session belongs to another specialist.")
    session.organization = context.org  # the same row: no second read
    return session


def _documents(session: ChatSession, accepted_at: datetime) -> list[tuple[str, str]]:
    """The text of the workspace's files, for a workspace session: those there when the turn was
    accepted (``accepted_at``, its assistant message's time); a file added since, while the turn was
    queued, was not in its hold and is not sent."""
    if not session.workspace_id:
        return []
    files = WorkspaceFile.objects.filter(
        organization_id=session.organization_id, workspace_id=session.workspace_id, created_at__lte=accepted_at
    )
    files = files.order_by("created_at")
    return [(name, text) for name, text in files.values_list("filename", "text") if text]


def assemble_turn(
    *,
    session: ChatSession,
    specialist: Specialist,
    rate: ModelRate,
    tools: tuple[list[ToolSpec], dict[str, ToolBinding]],
    user_message: Message,
    assistant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    reservation_id: uuid.UUID,
    accepted_at: datetime,
    history: list[Message] | None = None,
    member_limit: Decimal | Unread | None = UNREAD,
    fallbacks: list[ModelRate] | None = None,
    api_key_id: uuid.UUID | None = None,
    key_limit: Decimal | None = None,
) -> PreparedTurn:
    """The turn of an assistant message: its request (instructions, documents, history, tools), its
    payer and the rate every call of it is held and billed at. ``member_limit``: the sender's cap as
    read with their membership (read here when the caller has not, a queued turn's worker). The input
    is the turn's as it was accepted (``accepted_at``, the assistant message's time), also when a
    worker builds it later: the files and history the hold was sized for, nothing added since."""
    if isinstance(member_limit, Unread):
        member_limit = member_limit_of(session.organization_id, user_id)
    specs, bindings = tools
    request = build_request(
        specialist=specialist,
        rate=rate,
        session=session,
        user_message=user_message,
        tools=specs,
        documents=_documents(session, accepted_at),
        history=history,
    )
    payer = metering.Payer(
        org=session.organization,
        user_id=user_id,
        specialist_id=specialist.pk,
        specialist_name=specialist.name,
        specialist_limit=specialist.monthly_credit_limit,
        member_limit=member_limit,
        api_key_id=api_key_id,
        key_limit=key_limit,
        session_id=session.pk,
        message_id=assistant_id,
    )
    return PreparedTurn(
        payer=payer,
        provider=rate.provider,
        request=request,
        reservation_id=reservation_id,
        rate=rate,
        fallbacks=fallbacks or [],
        session_id=session.pk,
        user_message_id=user_message.pk,
        message_id=assistant_id,
        bindings=bindings,
        group=session.group_name,
        workspace_id=session.workspace_id,
    )


@transaction.atomic
def start_turn(
    *,
    context: OrgContext,
    specialist_id: uuid.UUID,
    message: str,
    session_id: uuid.UUID | None = None,
    workspace_id: uuid.UUID | None = None,
    attachment_ids: list[uuid.UUID] | None = None,
    queued: bool = False,
) -> PreparedTurn:
    """Prepare: validates, creates the session and both messages, and holds the first call's worst
    case. A refusal (400/402/409) rolls all of it back. The sender is the context's caller: a
    member, or an org API key (then the session's creator and the ledger's payer are the key)."""
    require_member(context)  # platform staff outside their orgs only read there (403)
    if not message or not message.strip():
        raise ValidationFailed("message", "This field may not be blank.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ValidationFailed("message", f"At most {MAX_MESSAGE_CHARS} characters.")
    specialist = specialist_of(context, specialist_id)
    workspace = workspace_of(context, workspace_id)
    if session_id is not None:
        session = _session(context, session_id, specialist)
        if workspace is not None and session.workspace_id != workspace.pk:
            raise ValidationFailed("workspaceId", "This session belongs to another workspace.")
    else:
        (session,) = db.insert(
            ChatSession(
                organization=context.org,
                specialist=specialist,
                workspace=workspace,
                **context.creator(),
                title=session_title(message),
                message_count=2,
                last_message_at=timezone.now(),
            )
        )
    attachments = attachments_of(context, attachment_ids or [])
    rate = metering.active_rate(model=specialist.model)
    fallbacks = fallback_rates(models=specialist.fallback_models)
    tools = tool_plan(specialist, in_workspace=bool(session.workspace_id))
    reservation_id = uuid.uuid4()
    now = timezone.now()
    user_message, assistant = db.insert(
        Message(session=session, role=Message.Role.USER, content=message, created_at=now),
        Message(
            session=session,
            role=Message.Role.ASSISTANT,
            status=Message.Status.QUEUED if queued else Message.Status.RUNNING,
            started_at=None if queued else now,
            heartbeat_at=None if queued else now,
            reservation_id=reservation_id,
            # a queued turn runs later from what it was accepted with, whatever changes meanwhile
            frozen_turn=snapshot.freeze(
                specialist=specialist,
                rates=[rate, *fallbacks],
                tools=tools,
                sender_id=context.user_id,
                sender_api_key_id=context.api_key_id,
            )
            if queued
            else None,
            created_at=now + timedelta(microseconds=1),  # strictly after the user's message
        ),
    )
    user_message.has_attachments = bool(attachments)  # read without a query when it has none
    if attachments:
        user_message.attachments.set(attachments)
        Attachment.objects.filter(
            organization_id=context.org.pk, pk__in=[a.pk for a in attachments], session__isnull=True
        ).update(session=session)
    if session_id is not None:
        db.execute(
            f"UPDATE {ChatSession._meta.db_table} SET message_count = message_count + 2, "  # noqa: S608
            "last_message_at = %s, updated_at = %s WHERE id = %s AND organization_id = %s",
            [now, now, session.pk, context.org.pk],
            scope=db.InOrg(context.org.pk),
        )
    turn = assemble_turn(
        session=session,
        specialist=specialist,
        rate=rate,
        tools=tools,
        user_message=user_message,
        assistant_id=assistant.pk,
        user_id=context.user_id,
        reservation_id=reservation_id,
        accepted_at=assistant.created_at,
        history=None if session_id is not None else [user_message],  # a new session's history is this message
        member_limit=caller_limit(context, context.user_id),
        api_key_id=context.api_key_id,
        key_limit=context.api_key.monthly_credit_limit if context.api_key is not None else None,
        fallbacks=fallbacks,
    )
    with metrics.refused_turns_counted(provider=rate.provider, model=rate.model):  # a 402: the turn is refused
        metering.hold(payer=turn.payer, request=turn.request, rate=rate, reservation_id=reservation_id)
    if not queued and settings.DB_FAST_TURN_START:
        # A live turn's start does not wait for the disk (DB_FAST_TURN_START): its client waits for
        # the first token, and the turn's end commits durably, this start with it. A queued start
        # was promised to its client (202) and waits.
        db.commit_without_waiting_for_disk()
    return turn


@transaction.atomic
def start_completion(*, context: OrgContext, provider: str, request: ProviderRequest, description: str) -> PreparedTurn:
    """Prepare a model call outside a chat session (the specialist wizard), billed to the caller (a
    member, or an org API key): its hold (402 before anything reaches the model)."""
    key = context.api_key
    payer = metering.Payer(
        org=context.org,
        user_id=context.user_id,
        member_limit=member_limit_of(context.org.pk, context.user_id),
        api_key_id=key.pk if key is not None else None,
        key_limit=key.monthly_credit_limit if key is not None else None,
    )
    return PreparedTurn(
        payer=payer,
        provider=provider,
        request=request,
        reservation_id=metering.hold(payer=payer, request=request),
        description=description,
    )


def beat(*, message_id: uuid.UUID) -> None:
    """Renews a running turn's lease (``heartbeat_at``): its process is alive."""
    db.update_rows(
        Message,
        {"heartbeat_at": timezone.now()},
        "id = %s AND status = %s",
        [message_id, Message.Status.RUNNING],
        scope=db.AcrossOrgs("a running turn's own message, by its id"),
    )
