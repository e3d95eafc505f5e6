"""Building what the model sees: instructions, document text, history within the context window."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import prefetch_related_objects

from billing.models import ModelRate
from chat.models import ChatSession, Message
from chat.providers.base import ChatMessage, ProviderRequest, ToolSpec, estimate_tokens
from core import db
from specialists.models import Specialist

MAX_ATTACHMENT_CHARS = 50_000


@dataclass(frozen=True, slots=True)
class ToolBinding:
    """What a model-facing tool name runs: an MCP tool on one of the org's connections, or a
    built-in (``save_artifact`` in workspace sessions)."""

    model_name: str
    tool_id: uuid.UUID | None
    connection_id: uuid.UUID | None
    remote_name: str
    builtin: str = ""
    org_id: uuid.UUID | None = None  # the specialist's org: a tool is only ever run inside it


def system_prompt(specialist: Specialist, documents: list[tuple[str, str]]) -> str:
    header = f"You are {specialist.name}"
    header += f", {specialist.title}." if specialist.title else "."
    parts = [header]
    if specialist.instructions:
        parts.append(specialist.instructions.strip())
    if documents:
        parts.append("Documents you have been given:")
        parts.extend(f"### {name}\n{text[:MAX_ATTACHMENT_CHARS]}" for name, text in documents)
    return "\n\n".join(parts)


def user_content(message: Message) -> str:
    """The message text plus the text of its attachments."""
    blocks = [message.content]
    attachments = message.attachments.all() if getattr(message, "has_attachments", True) else []
    for attachment in attachments:
        if attachment.text:
            blocks.append(f"### {attachment.filename}\n{attachment.text[:MAX_ATTACHMENT_CHARS]}")
        else:
            blocks.append(f"### {attachment.filename}\n(no text could be extracted from this file)")
    return "\n\n".join(blocks)


def history_messages(session: ChatSession, upto: Message) -> list[Message]:
    """Earlier completed messages and the new user message, oldest first (a hand-written read, with
    whether each message has attachments: a chat turn's hot path)."""
    attachments = Message.attachments.through._meta.db_table
    found = db.rows(
        f"SELECT {db.columns(Message, 'm')}, "  # noqa: S608
        f"EXISTS (SELECT 1 FROM {attachments} a WHERE a.message_id = m.id) FROM {Message._meta.db_table} m "
        "WHERE m.session_id = %s AND m.created_at <= %s AND m.status <> %s "
        "AND NOT (m.role = %s AND m.status IN (%s, %s)) ORDER BY m.created_at",
        [
            session.pk,
            upto.created_at,
            Message.Status.FAILED,
            Message.Role.ASSISTANT,
            Message.Status.QUEUED,
            Message.Status.RUNNING,
        ],
    )
    messages = []
    for row in found:
        message = row.take(Message)
        message.has_attachments = bool(row.rest()[0])
        messages.append(message)
    # the attachments of the messages that have some, in one query (none at all in most sessions)
    prefetch_related_objects([message for message in messages if message.has_attachments], "attachments")
    return messages


def build_request(
    *,
    specialist: Specialist,
    rate: ModelRate,
    session: ChatSession,
    user_message: Message,
    tools: list[ToolSpec],
    documents: list[tuple[str, str]],
    history: list[Message] | None = None,
) -> ProviderRequest:
    system = system_prompt(specialist, documents)
    budget = rate.context_window - specialist.max_output_tokens - estimate_tokens(system) - 64
    budget -= sum(estimate_tokens(t.name + t.description + str(t.input_schema)) for t in tools)
    chat: list[ChatMessage] = []
    for message in reversed(history if history is not None else history_messages(session, user_message)):
        if message.role == Message.Role.TOOL:
            continue
        content = user_content(message) if message.role == Message.Role.USER else message.content
        cost = estimate_tokens(content) + 4
        if chat and cost > budget:
            break  # older history no longer fits the model's context window
        budget -= cost
        chat.append(ChatMessage(role=message.role, content=content))
    chat.reverse()
    return ProviderRequest(
        model=specialist.model,
        system=system,
        messages=chat,
        max_output_tokens=specialist.max_output_tokens,
        temperature=specialist.temperature,
        tools=tools,
    )
