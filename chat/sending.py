"""Sending a message, the service of both send endpoints (``POST /api/chat/stream`` and
``/api/chat/async``) and nothing else: the caller's chat throttle, the body, then the turn prepared
once per ``Idempotency-Key`` (a repeat answers the first result, with the message's status now)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from django.db import transaction

from accounts.idempotency import Result, run_idempotent
from accounts.models import IdempotencyRecord
from chat import turns
from chat.jobs import run_queued_turn
from chat.models import Message
from chat.serializers import ON_DISCONNECT_CONTINUE, SendBody, SendSerializer
from chat.turns import PreparedTurn
from core import tracing
from core.log_context import current_request_id
from core.throttles import check_chat
from orgs.principal import Principal


@dataclass(frozen=True, slots=True)
class SendResult:
    """A send's answer: its status and body, and the turn to run (None when the Idempotency-Key
    replays an earlier send)."""

    status: int
    body: dict[str, str]
    turn: PreparedTurn | None
    keep_running: bool = False  # onDisconnect "continue": a stream's turn goes on without its client

    @property
    def replayed(self) -> bool:
        return self.turn is None


def _sent_body(turn: PreparedTurn, message_status: str) -> dict[str, str]:
    return {"session_id": str(turn.session_id), "message_id": str(turn.message_id), "status": message_status}


def _replay(record: IdempotencyRecord) -> Result[dict[str, str]]:
    """A repeated send: the first result with the message's current status."""
    body = dict(record.response_body)
    current = (
        Message.objects.across_orgs("the message of the caller's own idempotency record")
        .filter(pk=body["message_id"])
        .values_list("status", flat=True)
        .first()
    )
    body["status"] = current or body["status"]
    return record.response_status, body


def send_message(
    *, principal: Principal, body: object, idempotency_key: str | None, scope: str, queued: bool
) -> SendResult:
    """A message sent by ``principal`` (a member or an org API key): 429 past the caller's or the
    org's chat rate, 400 for a bad body, then the turn prepared (its session, both messages and the
    first hold, or a refusal) once per ``Idempotency-Key`` of the caller within ``scope``. ``body``
    is the request's parsed JSON, whatever its shape (validated here). A queued
    turn is handed to a worker when the transaction commits."""
    check_chat(caller_id=principal.caller_id, org_id=principal.org.pk)
    serializer = SendSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    data = cast(SendBody, serializer.validated_data)
    started: list[PreparedTurn] = []

    def action() -> Result[dict[str, str]]:
        turn = turns.start_turn(
            context=principal.context,
            specialist_id=data["specialist_id"],
            message=data["message"],
            session_id=data.get("session_id"),
            workspace_id=data.get("workspace_id"),
            attachment_ids=data.get("attachment_ids"),
            queued=queued,
        )
        started.append(turn)
        if queued:
            transaction.on_commit(
                lambda: run_queued_turn.enqueue(str(turn.message_id), current_request_id(), **tracing.job_context())
            )
            return 202, _sent_body(turn, Message.Status.QUEUED)
        return 200, _sent_body(turn, Message.Status.RUNNING)

    (code, answer), replayed = run_idempotent(
        caller=principal.caller_id,
        user=principal.user,
        scope=f"{scope}:{principal.org.pk}",
        key=idempotency_key,
        payload=body,
        action=action,
        replay=_replay,
    )
    return SendResult(
        status=code,
        body=answer,
        turn=None if replayed or not started else started[0],
        keep_running=data["on_disconnect"] == ON_DISCONNECT_CONTINUE,
    )
