"""Reading a turn's kept events again (``chat.replay``): what a resuming client is answered, for
``GET /api/chat/messages/{id}/events`` and the WebSocket's ``resume`` frame alike.

The log says what happened; the database says whether the turn is queued, running or over. Their
seams: a turn that ended more than STREAM_REPLAY_SECONDS ago is 410 whatever is left in Redis; a
turn whose log ends without its final event although the message is over either lost its process
(maintenance failed it: ``worker_lost``, or it never started) and its log ends with that error, or
its log stopped being written (Redis went away): then no history is answered rather than a wrong one
(503). The message is written before the turn's final events are, so a turn ended less than
SETTLE_SECONDS ago is still waited for."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from chat.calls import NO_ID, TurnEvent
from chat.errors import EventsExpiredError, ReplayUnavailableError, WorkerLostError
from chat.models import ChatSession, Message
from chat.replay import FINAL_EVENTS, ReplayStore, store
from chat.selectors import readable_sessions
from core.errors import DomainError, NotFoundError
from orgs.context import OrgContext

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 5.0  # a follower that saw nothing this long sends a keep-alive and reads the turn's state again
SETTLE_SECONDS = 5.0  # a turn over for less than this may still be writing its last events
ENDED = (Message.Status.COMPLETED, Message.Status.FAILED)


@dataclass(frozen=True, slots=True)
class TurnState:
    """What the database says of a turn (its assistant message), read by the caller."""

    message_id: uuid.UUID
    status: str
    started: bool
    completed_at: datetime | None
    error_code: str
    error: str

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def settled(self, now: datetime) -> bool:
        """Over long enough that its last events, if any, are written."""
        settle = timedelta(seconds=SETTLE_SECONDS)
        return self.ended and (self.completed_at is None or now - self.completed_at >= settle)

    def expired(self, now: datetime) -> bool:
        window = timedelta(seconds=settings.STREAM_REPLAY_SECONDS)
        return self.ended and self.completed_at is not None and now - self.completed_at > window


STATE_FIELDS = ("id", "status", "started_at", "completed_at", "error_code", "error")


@dataclass(frozen=True, slots=True)
class Replayed:
    """The kept events after the id asked for (``sent``: the client's last one, once these are
    sent); ``logged`` the last id read from the log (it may be behind the client, whose stream ran
    ahead of the log's batches); ``ended`` whether the turn's final event has been read."""

    events: list[TurnEvent]
    sent: int
    logged: int
    ended: bool


def _closing_error(state: TurnState, last_id: int) -> TurnEvent | None:
    """The final event of a turn that is over without one in its log: the error it was failed with,
    when its process was lost or it never ran (nothing it did is missing from the log); None when
    its log is incomplete."""
    if state.started and state.error_code != WorkerLostError.code:
        return None
    return TurnEvent("error", {"code": state.error_code, "detail": state.error}, id=last_id + 1)


async def replay_after(*, state: TurnState, after: int, replay: ReplayStore | None = None) -> Replayed:
    """The events of the turn after ``after`` that are kept now. 410 ``events_expired`` when they are
    no longer kept; 503 when the log cannot be read or is incomplete."""
    now = timezone.now()
    if state.expired(now):
        raise EventsExpiredError
    kept = await (replay or store()).read(str(state.message_id), after=after)
    if kept is None:
        if not state.settled(now):
            return Replayed([], after, 0, False)  # not started yet, or its first events are on their way
        closing = _closing_error(state, after)
        if closing is None:
            raise ReplayUnavailableError("The events of this turn were not kept.")
        return Replayed([closing], closing.id, closing.id, True)
    if kept.first_id > after + 1:
        raise EventsExpiredError("The earliest events of this turn asked for are no longer kept.")
    sent = max(kept.last_id, after)
    if not kept.ended and state.settled(now):
        closing = _closing_error(state, sent)
        if closing is None:
            raise ReplayUnavailableError("The events of this turn were not all kept.")
        return Replayed([*kept.events, closing], closing.id, closing.id, True)
    return Replayed(kept.events, sent, kept.last_id, kept.ended)


async def follow(
    *,
    state: TurnState,
    replayed: Replayed,
    read_state: Callable[[], Awaitable[TurnState]],
    replay: ReplayStore | None = None,
) -> AsyncGenerator[TurnEvent | None]:
    """What ``replay_after`` gave, then each new event of the turn as it is written, until its
    ``done`` or ``error``; None every KEEPALIVE_SECONDS of silence (the turn's state is then read
    again with ``read_state``: one that is over without its final event ends as ``replay_after``
    says). A log that can no longer be read ends the events with an ``error``."""
    replay = replay or store()
    for event in replayed.events:
        yield event
        if event.name in FINAL_EVENTS:
            return
    if replayed.ended:
        return
    sent, logged, key = replayed.sent, replayed.logged, str(state.message_id)
    while True:
        try:
            events = await replay.wait(key, after=logged, seconds=KEEPALIVE_SECONDS)
        except ReplayUnavailableError as error:
            yield _error_event(error)
            return
        if events and events[0].id > logged + 1:  # the log lost events meanwhile (expired, trimmed)
            yield _error_event(EventsExpiredError("Events of this turn after the last one sent are no longer kept."))
            return
        for event in events:
            logged = event.id
            if event.id > sent:  # what the client has not had (its stream may have run ahead of the log)
                yield event
                sent = event.id
            if event.name in FINAL_EVENTS:
                return
        if events:
            continue
        yield None
        try:
            state = await read_state()
        except NotFoundError as error:  # deleted with its session (a turn that never ran)
            yield _error_event(error)
            return
        except Exception as exc:  # the database is briefly away: read again at the next keep-alive
            logger.warning("Could not read the state of turn %s: %r", key, exc)
            continue
        if state.settled(timezone.now()):
            try:
                tail = await replay_after(state=state, after=sent, replay=replay)
            except (EventsExpiredError, ReplayUnavailableError) as error:
                yield _error_event(error)
                return
            for event in tail.events:
                yield event
            return


def _error_event(error: DomainError) -> TurnEvent:
    """An ``error`` that ends a follower's stream, not one of the turn's events: it has no id (the
    client's last id stays the last event it really had, so a reconnect misses nothing)."""
    return TurnEvent("error", {"code": error.code, "detail": error.detail}, id=NO_ID)


def readable_turn(*, context: OrgContext, message_id: uuid.UUID, session_id: uuid.UUID | None = None) -> TurnState:
    """The state of an assistant message of the context's org in a session the caller may read (the
    session's tenancy: another member's session, for a member, is 404); ``session_id`` narrows it
    to one session (a socket's)."""
    sessions = readable_sessions(ChatSession.objects.for_org(context.org), context=context)
    if session_id is not None:
        sessions = sessions.filter(pk=session_id)
    row = (
        Message.objects.for_org(context.org)
        .filter(pk=message_id, role=Message.Role.ASSISTANT, session__in=sessions)
        .values(*STATE_FIELDS)
        .first()
    )
    if row is None:
        raise NotFoundError
    return _state_of(row)


def read_turn_state(*, org_id: uuid.UUID, message_id: uuid.UUID) -> TurnState:
    """The state of a message already found readable (``readable_turn``), read again."""
    row = Message.objects.for_org(org_id).filter(pk=message_id).values(*STATE_FIELDS).first()
    if row is None:  # deleted with its session meanwhile
        raise NotFoundError
    return _state_of(row)


def _state_of(row: dict[str, Any]) -> TurnState:  # a row of .values(*STATE_FIELDS): Django types it Any
    return TurnState(
        message_id=row["id"],
        status=row["status"],
        started=row["started_at"] is not None,
        completed_at=row["completed_at"],
        error_code=row["error_code"],
        error=row["error"],
    )
