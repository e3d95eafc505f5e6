"""WebSocket ``/ws/chat/sessions/{id}/``: every turn of the session, live, each event once and in
order (with its turn's ``messageId`` and ``id``); send messages, and resume a turn from an event id."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import TypedDict
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.models import User
from chat import replay, resume, turns, watchers
from chat.calls import TurnEvent
from chat.models import ChatSession
from chat.pipeline import drain
from chat.serializers import FrameSerializer, ResumeFrameSerializer
from core import metrics, tracing
from core.errors import (
    NotAuthenticatedError,
    RateLimitedError,
    ServerError,
    TokenNotValidError,
    ValidationFailed,
    as_domain_error,
)
from core.json_types import JSONObject, JSONValue
from core.throttles import chat_wait, websocket_wait
from orgs.api_keys import usable_api_key
from orgs.principal import Credential, Principal, authenticate_token, principal_in
from orgs.realtime import member_group

logger = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_MEMBERSHIP_REMOVED = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429
CLOSE_TOO_LARGE = 1009
CLOSE_TRY_AGAIN_LATER = 1013  # the channel layer (Redis) cannot be reached
# The largest frame a client may send: room for a message at its longest (100,000 characters, as
# UTF-8 or with light JSON escaping), and under Daphne's own limit (1 MiB), past which the server
# drops the connection without a close frame the client can read.
MAX_FRAME_BYTES = 768 * 1024
LAYER_TIMEOUT_SECONDS = 2.0


FRAME_HINT = (
    'Send a JSON frame {"type": "message", "message": "…", "attachmentIds": [...]} or '
    '{"type": "resume", "messageId": "…", "after": <event id>}.'
)


class _Refused(Exception):
    def __init__(self, close_code: int) -> None:
        super().__init__(close_code)
        self.close_code = close_code


def _credential(token: str) -> Credential | None:
    """The token's active user or the usable org API key, and when it expires (``orgs.principal``,
    as every path); a key past its own throttle closes 4429."""
    try:
        return authenticate_token(token)
    except RateLimitedError as exc:
        raise _Refused(CLOSE_TOO_MANY) from exc
    except (InvalidToken, AuthenticationFailed, NotAuthenticatedError, TokenNotValidError):
        return None


def _caller_id(credential: Credential) -> str:
    if credential.api_key is not None:
        return f"key:{credential.api_key.pk}"
    return str(credential.user.pk if credential.user is not None else "")


class _Gone(Exception):
    """The caller has no access to the session's org (``principal_in``)."""


def _open(token: str, session_id: str) -> tuple[Principal, ChatSession]:
    """One hop for a new socket: the caller (4401), their connection throttle (4429), then the
    session and the caller's access to it, as a principal in the session's org (4404)."""
    credential = _credential(token) if token else None
    if credential is None:
        raise _Refused(CLOSE_NOT_AUTHENTICATED)
    if websocket_wait(caller_id=_caller_id(credential)) is not None:
        raise _Refused(CLOSE_TOO_MANY)
    try:
        session_pk = uuid.UUID(session_id)  # the route lets through any 36 hex digits and dashes
    except ValueError as exc:
        raise _Refused(CLOSE_NOT_FOUND) from exc
    session = (
        ChatSession.objects.across_orgs("the id in the socket's URL; access is checked next")
        .filter(pk=session_pk)
        .first()
    )
    if session is None:
        raise _Refused(CLOSE_NOT_FOUND)
    try:
        principal = principal_in(credential, session.organization_id, missing=_Gone)
    except _Gone as exc:
        raise _Refused(CLOSE_NOT_FOUND) from exc
    if not turns.can_read_session(principal.context, session):
        raise _Refused(CLOSE_NOT_FOUND)
    return principal, session


def _access(principal: Principal, session: ChatSession) -> Principal:
    """The caller's access to the session, read again: an inactive user or a membership that is
    gone closes the socket 4403, a revoked or expired key 4401, a role that may no longer read the
    session 4404."""
    if principal.api_key is not None:
        key = usable_api_key(principal.api_key)
        if key is None:
            raise _Refused(CLOSE_NOT_AUTHENTICATED)
        credential = Credential(user=None, expires_at=principal.expires_at, api_key=key)
    else:
        active = User.objects.filter(pk=principal.user.pk, is_active=True).first() if principal.user else None
        if active is None:
            raise _Refused(CLOSE_MEMBERSHIP_REMOVED)
        credential = Credential(user=active, expires_at=principal.expires_at)
    try:
        again = principal_in(credential, session.organization_id, missing=_Gone)
    except _Gone as exc:
        raise _Refused(CLOSE_MEMBERSHIP_REMOVED) from exc
    if not turns.can_read_session(again.context, session):
        raise _Refused(CLOSE_NOT_FOUND)
    return again


def _start_from_frame(
    principal: Principal, session: ChatSession, message: str, attachment_ids: list[uuid.UUID]
) -> turns.PreparedTurn:
    """One hop for a ``message`` frame: the access checked again (it may have gone since the socket
    opened), the sender's chat throttle, then the turn's prepare phase."""
    principal = _access(principal, session)
    if chat_wait(caller_id=principal.caller_id, org_id=principal.org.pk) is not None:
        raise _Refused(CLOSE_TOO_MANY)
    return turns.start_turn(
        context=principal.context,
        specialist_id=session.specialist_id,
        message=message,
        session_id=session.pk,
        attachment_ids=attachment_ids,
    )


class LayerMessage(TypedDict, total=False):
    """A channel-layer message this consumer handles (``membership.changed``, ``layer.unavailable``);
    ``chat.events`` (every event of a turn, those of a turn failed by maintenance too) is
    ``chat.watchers.ChatEventsMessage``."""

    type: str
    error: str  # layer.unavailable: why


class ChatSessionConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels ships no types
    """A socket lives no longer than its access: it closes 4401 when the access token it was opened
    with expires, and reads the user and membership again every ``WEBSOCKET_RECHECK_SECONDS`` (4403
    once the user is deactivated or no longer a member), besides at once when a membership change is
    announced."""

    async def connect(self) -> None:
        self.group: str | None = None
        self.sent: dict[str, int] = {}  # per turn, the id of the last event this socket sent
        self.turns: set[asyncio.Task[str]] = set()
        self.watchers: list[asyncio.Task[None]] = []
        protocols = list(self.scope.get("subprotocols") or [])
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [""])[0]
        offered_bearer = len(protocols) >= 2 and protocols[0].lower() == "bearer"
        if offered_bearer and not token:
            token = protocols[1]
        subprotocol = protocols[0] if offered_bearer else None
        try:
            self.principal, self.session = await database_sync_to_async(_open)(
                token, self.scope["url_route"]["kwargs"]["session_id"]
            )
        except _Refused as refused:  # accepted first, so that the client can read the close code
            await self.accept(subprotocol)
            await self.close(code=refused.close_code)
            return
        self.group = self.session.group_name
        metrics.websocket_opened()  # counted down in disconnect, which leaves the group once
        key = self.principal.api_key
        self.member_group = member_group(
            self.session.organization_id,
            self.principal.user.pk if self.principal.user is not None else None,
            api_key_id=key.pk if key is not None else None,
        )
        try:
            async with asyncio.timeout(LAYER_TIMEOUT_SECONDS):
                await self.channel_layer.group_add(self.group, self.channel_name)
                await self.channel_layer.group_add(self.member_group, self.channel_name)
        except Exception as exc:  # live events cannot reach this socket: the client tries again later
            logger.warning("WebSocket refused, the channel layer is unavailable: %r", exc)
            await self.disconnect(CLOSE_TRY_AGAIN_LATER)  # leaves what it joined, if it can
            await self.accept(subprotocol)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        await self.accept(subprotocol)
        expires_at = self.principal.expires_at
        self.watchers = [asyncio.create_task(self._recheck())]
        if expires_at is not None:
            self.watchers.append(asyncio.create_task(self._expire(expires_at)))

    async def _expire(self, expires_at: float) -> None:
        """Closes 4401 when the access token the socket was opened with expires."""
        await asyncio.sleep(max(expires_at - time.time(), 0.0))
        await self._close(CLOSE_NOT_AUTHENTICATED)

    async def _recheck(self) -> None:
        """Reads the caller's access again periodically: a user deactivated or a membership gone
        (also when nobody announced it) closes the socket 4403 within one interval."""
        while self.group:
            await asyncio.sleep(settings.WEBSOCKET_RECHECK_SECONDS)
            try:
                self.principal = await database_sync_to_async(_access)(self.principal, self.session)
            except _Refused as refused:
                await self._close(refused.close_code)
                return
            except Exception as exc:  # the database briefly unavailable: read again next time
                logger.warning("Could not re-check a WebSocket's access: %r", exc)

    async def disconnect(self, code: int) -> None:
        current = asyncio.current_task()
        for watcher in self.watchers:
            if watcher is not current:  # a watcher that closes the socket finishes its own close
                watcher.cancel()
        self.watchers = []
        if self.group:
            group, self.group = self.group, None
            metrics.websocket_closed()
            try:
                async with asyncio.timeout(LAYER_TIMEOUT_SECONDS):
                    await self.channel_layer.group_discard(group, self.channel_name)
                    await self.channel_layer.group_discard(self.member_group, self.channel_name)
            except Exception as exc:  # the groups expire on their own
                logger.warning("Could not leave %s: %r", group, exc)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: object) -> None:
        """A frame that is not JSON is answered with an error frame; the socket stays open. A frame
        larger than MAX_FRAME_BYTES closes it (1009)."""
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            await self._close(CLOSE_TOO_LARGE)
            return
        try:
            content = json.loads(text_data if text_data is not None else (bytes_data or b""))
        except (ValueError, RecursionError):
            await self._error(ValidationFailed.code, FRAME_HINT)
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: JSONValue, **kwargs: object) -> None:
        if not self.group:
            return
        kind = content.get("type") if isinstance(content, dict) else None
        if not isinstance(content, dict) or kind not in ("resume", "message"):
            await self._error(ValidationFailed.code, FRAME_HINT)
            return
        if kind == "resume":
            await self._resume(content)
            return
        data = {"message": content.get("message")}
        if content.get("attachmentIds") is not None:
            data["attachment_ids"] = content["attachmentIds"]
        frame = FrameSerializer(data=data)
        if not frame.is_valid():  # the same rules as the HTTP send endpoints
            invalid = as_domain_error(ValidationError(frame.errors)) or ServerError()
            await self._error(invalid.code, invalid.detail, invalid.extra)
            return
        if not tracing.ENABLED:
            await self._start_turn(frame)
            return
        with tracing.websocket_turn(scope=self.scope, session_id=str(self.session.pk)) as started:
            started(await self._start_turn(frame))  # the turn's span ends with its task

    async def _start_turn(self, frame: FrameSerializer) -> asyncio.Task[str] | str:
        """The turn of a valid ``message`` frame, running in a task of its own; or, when it could not
        start, the code of the error frame sent (or of the close)."""
        try:
            turn = await database_sync_to_async(_start_from_frame)(
                self.principal,
                self.session,
                frame.validated_data["message"],
                frame.validated_data.get("attachment_ids") or [],
            )
        except _Refused as refused:
            await self._close(refused.close_code)
            return f"closed_{refused.close_code}"
        except Exception as exc:  # a frame never takes the socket down: the error goes back as a frame
            error = as_domain_error(exc)
            if error is None:
                logger.exception("Could not start a turn from a WebSocket frame")
                error = ServerError()
            await self._error(error.code, error.detail, error.extra)
            return error.code
        task = asyncio.create_task(drain(turn=turn))  # its events reach this socket through the group
        self.turns.add(task)
        task.add_done_callback(self.turns.discard)
        return task

    async def _close(self, code: int) -> None:
        await self.disconnect(code)
        await self.close(code=code)

    async def membership_changed(self, message: LayerMessage) -> None:
        """The caller's membership of the session's org was removed or its role changed: access is
        read again, and the socket closes at once if it is gone (4403) or no longer covers this
        session (4404)."""
        try:
            self.principal = await database_sync_to_async(_access)(self.principal, self.session)
        except _Refused as refused:
            await self._close(refused.close_code)

    async def layer_unavailable(self, message: LayerMessage) -> None:
        """The channel layer (Redis) went away: live events can no longer arrive."""
        logger.warning("WebSocket closed, the channel layer is unavailable: %s", message.get("error"))
        await self._close(CLOSE_TRY_AGAIN_LATER)

    async def _error(self, code: str, detail: str, extra: dict[str, object] | None = None) -> None:
        await self.send_json({"event": "error", "data": {"code": code, "detail": detail, **(extra or {})}})

    # --- a turn's events, each once and in order -------------------------------------------------
    # ``self.sent`` holds, per turn this socket has sent events of (or was asked to resume), the id of
    # the last one it sent. Live batches (``chat.replay``: written to the log before they are
    # published) that skip ids are completed from the log; ids already sent are skipped.

    async def chat_events(self, message: watchers.ChatEventsMessage) -> None:
        key = message["message_id"]
        batch = [TurnEvent(name, data, id=seq) for seq, name, data in message["events"]]
        sent = self.sent.get(key, 0)
        if batch and batch[0].id > sent + 1:  # this socket has not had the turn's earlier events
            try:
                kept = await replay.store().read(key, after=sent)
            except Exception as exc:  # the log is away: the live events still go out
                logger.warning("Could not complete the events of %s from the log: %r", key, exc)
                kept = None
            if kept is not None and kept.events:
                batch = [*kept.events, *(event for event in batch if event.id > kept.events[-1].id)]
        await self._send_events(key, batch)

    async def _resume(self, content: JSONObject) -> None:
        """A turn of this session: its kept events after ``after`` that this socket has not sent,
        then (through the group) its live ones. A refusal is an ``error`` frame with the
        ``messageId`` and no ``id``; the socket stays open."""
        frame = ResumeFrameSerializer(data={"message_id": content.get("messageId"), "after": content.get("after", 0)})
        if not frame.is_valid():
            invalid = as_domain_error(ValidationError(frame.errors)) or ServerError()
            await self._error(invalid.code, invalid.detail, invalid.extra)
            return
        message_id, after = frame.validated_data["message_id"], frame.validated_data["after"]
        key = str(message_id)
        try:
            state = await database_sync_to_async(resume.readable_turn)(
                context=self.principal.context, message_id=message_id, session_id=self.session.pk
            )
            replayed = await resume.replay_after(state=state, after=max(after, self.sent.get(key, 0)))
        except Exception as exc:  # not this session's turn (404), its events expired (410), Redis away (503)
            error = as_domain_error(exc)
            if error is None:
                logger.exception("Could not resume turn %s on a WebSocket", key)
                error = ServerError()
            refusal = {"code": error.code, "detail": error.detail}
            await self.send_json({"event": "error", "data": refusal, "messageId": key})
            return
        self.sent[key] = max(after, self.sent.get(key, 0))
        await self._send_events(key, replayed.events)

    async def _send_events(self, key: str, events: list[TurnEvent]) -> None:
        sent = self.sent.get(key, 0)
        for event in events:
            if event.id <= sent:
                continue
            await self.send_json({"event": event.name, "data": event.data, "messageId": key, "id": event.id})
            sent = event.id
            if event.name in replay.FINAL_EVENTS:  # the turn is over: nothing more of it will come
                self.sent.pop(key, None)
                return
        self.sent[key] = sent
