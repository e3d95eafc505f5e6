"""``GET /api/chat/messages/{messageId}/events``: a turn's kept events after ``Last-Event-ID`` (or
``?after=``), then its live ones until ``done`` or ``error`` (``chat.resume``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

from chat import resume
from chat.calls import TurnEvent
from chat.errors import EventsExpiredError
from chat.resume import Replayed, TurnState
from chat.send_views import SSE_EVENT_SCHEMA, AsyncHandlers, sse_frame
from core.db import in_thread, release_connections
from core.errors import DomainError, NotAcceptableError, ValidationFailed, error_response, exception_handler
from core.negotiation import accepts_any
from orgs.api import OrgAPIView, bind_log_context
from orgs.principal import authenticate, bearer

EVENT_MEDIA_TYPES = ("text/event-stream", "application/problem+json")
NOT_ACCEPTABLE = "This endpoint answers text/event-stream (or application/problem+json)."
KEEPALIVE = b": keep-alive\n\n"
MAX_EVENT_ID = 2**53  # any id a turn can give, and a JSON number every client reads exactly

EVENTS_DESCRIPTION = (
    "The events of that assistant message's turn with an id greater than `Last-Event-ID` (the header, "
    "which a reconnecting `EventSource` sends; or `?after=`; a non-empty header wins; neither = from the "
    "start), "
    "then its live events until `done` or `error`, then the stream ends: the same events, ids and data as "
    "the original stream (`session`, `fallback`, `delta`, `tool_call`, `tool_result`, `usage`, `done`, "
    "`error`). A cancelled or failed turn's events end with its `error`. For a message still queued the "
    "stream waits for the turn to start, with SSE comments (`: keep-alive`) while nothing happens. Events "
    "are kept from the turn's start until `STREAM_REPLAY_SECONDS` (default 600) after it ends, then they "
    "are gone (the session's messages still hold the result). Tenancy as for the session: another "
    "member's session, for a member, is not found. When the kept events cannot be read (Redis is away) or "
    "were not all kept, no history is answered rather than a wrong one; should the log become unreadable "
    "while the stream follows the turn, the stream ends with an `error` without an `id:` (not an event of "
    "the turn: a reconnect with `Last-Event-ID` misses nothing)."
)


def _after(request: HttpRequest) -> int:
    """The last event id the client has: ``Last-Event-ID`` if sent and not empty, else ``?after=``, else 0."""
    header = (request.headers.get("Last-Event-ID") or "").strip()
    raw, name = (header, "Last-Event-ID") if header else (request.GET.get("after"), "after")
    if raw is None or raw.strip() == "":
        return 0
    try:
        after = int(raw.strip())
    except ValueError:
        after = -1
    if not 0 <= after <= MAX_EVENT_ID:
        raise ValidationFailed(name, f"An event id: a whole number from 0 to {MAX_EVENT_ID}.")
    return after


async def _sse(events: AsyncGenerator[TurnEvent | None]) -> AsyncGenerator[bytes]:
    async with aclosing(events):
        async for event in events:
            yield KEEPALIVE if event is None else sse_frame(event.id, event.name, event.data)


class MessageEventsView(AsyncHandlers, OrgAPIView):
    """An async view (``AsyncHandlers``): one thread hop finds the message in a session the caller
    may read, then the events stream on the event loop (a hop more every KEEPALIVE_SECONDS of
    silence, to read the turn's state again)."""

    errors = (EventsExpiredError, NotAcceptableError)
    async_methods = frozenset({"GET", "HEAD"})

    def find_turn(self, request: HttpRequest, message_id: uuid.UUID) -> HttpResponseBase | tuple[uuid.UUID, TurnState]:
        """The caller (a member or an org API key, in the request's org) and the turn's state (404 for
        a message of a session they may not read). Its connection is given back before the stream."""
        try:
            principal = authenticate(bearer(request), org_header=request.headers.get("X-Org-Id"))
            bind_log_context(principal)
            return principal.org.pk, resume.readable_turn(context=principal.context, message_id=message_id)
        except Exception as exc:
            return exception_handler(exc, {})
        finally:
            release_connections()

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                description="The id of the last event the client has; the events after it are sent.",
            ),
            OpenApiParameter(
                "after",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                description="As `Last-Event-ID`, for clients that cannot set a header; a non-empty header wins.",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                SSE_EVENT_SCHEMA,
                description="The turn's events after the last one seen, each with its `id:`, then its live ones.",
                examples=[
                    OpenApiExample(
                        "Resumed after event 2",
                        value='id: 3\nevent: delta\ndata: {"text":" world"}\n\n'
                        ": keep-alive\n\n"
                        'id: 4\nevent: usage\ndata: {"inputTokens":12,"outputTokens":3,"credits":"0.000018",'
                        '"balance":"99.999982","model":"gpt-4o-mini"}\n\n'
                        'id: 5\nevent: done\ndata: {"messageId":"…","finishReason":"stop"}\n\n',
                    )
                ],
            ),
        },
        summary="Resume a turn: its kept events after the last one seen, then its live ones (SSE)",
        description=EVENTS_DESCRIPTION,
    )
    async def get(self, request: HttpRequest, message_id: uuid.UUID) -> HttpResponseBase:
        if not accepts_any(request, EVENT_MEDIA_TYPES):
            return error_response(NotAcceptableError(NOT_ACCEPTABLE))
        found = await sync_to_async(self.find_turn)(request, message_id)
        if isinstance(found, HttpResponseBase):
            return found
        org_id, state = found
        try:
            after = _after(request)
            replayed = await resume.replay_after(state=state, after=after)
        except DomainError as error:
            return error_response(error)
        if request.method == "HEAD":
            response: HttpResponseBase = HttpResponse(content_type="text/event-stream")
        else:
            response = StreamingHttpResponse(_sse(_followed(org_id, state, replayed)), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


_read_turn_state = in_thread(resume.read_turn_state)


def _followed(org_id: uuid.UUID, state: TurnState, replayed: Replayed) -> AsyncGenerator[TurnEvent | None]:
    async def read_state() -> TurnState:
        return await _read_turn_state(org_id=org_id, message_id=state.message_id)

    return resume.follow(state=state, replayed=replayed, read_state=read_state)
