"""The send endpoints: ``POST /api/chat/stream`` (the turn's events as Server-Sent Events) and
``POST /api/chat/async`` (a worker runs it). Both send through ``chat.sending.send_message``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Protocol, cast

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from djangorestframework_camel_case.util import camelize
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.idempotency import IDEMPOTENCY_HEADER
from billing.errors import REFUSALS
from chat.calls import NO_ID, TurnEvent
from chat.pipeline import run_turn
from chat.providers.base import ProviderError
from chat.sending import SendResult, send_message
from chat.serializers import SendSerializer, SentSerializer
from chat.turns import PreparedTurn
from core.db import release_connections
from core.errors import (
    IdempotencyKeyReusedError,
    NotAcceptableError,
    RateLimitedError,
    error_response,
    exception_handler,
)
from core.json_types import JSONObject, compact_json
from core.negotiation import accepts_any
from mcps.services import MCPUnreachableError
from orgs.api import OrgAPIView, bind_log_context
from orgs.principal import authenticate, bearer
from specialists.errors import SpecialistInactiveError

SSE_DESCRIPTION = """Server-Sent Events, in this order: `session` {sessionId, userMessageId, messageId} →
any number of `fallback` {fromModel, toModel, reason} (a model failed before its first output and the next is
tried), `delta` {text}, `tool_call` {id, name, arguments, connectionId}, `tool_result`
{id, result, isError, durationMs} → `usage` {inputTokens, outputTokens, credits, balance, model} → `done`
{messageId, finishReason}. A failure after the stream started ends with `usage` (if anything was billed)
and `error` {code, detail}. Every event carries an SSE `id:`. Refusals before the stream starts
(400, 402, 403, 404, 409, 429) are ordinary problem+json responses. With an Idempotency-Key that was
already used with the same body, the answer is 200 JSON {sessionId, messageId, status} instead of a second stream."""


def sse_frame(seq: int, name: str, data: JSONObject) -> bytes:
    """One SSE event; one without an id (NO_ID: not an event of the turn's log) has no ``id:`` line,
    so the client's last event id stays the last one it really had."""
    head = "" if seq == NO_ID else f"id: {seq}\n"
    return f"{head}event: {name}\ndata: {compact_json(data)}\n\n".encode()


async def _sse_bytes(head: list[TurnEvent], events: AsyncGenerator[TurnEvent]) -> AsyncGenerator[bytes]:
    async with aclosing(events):
        # what came before the first output (the session, then that output): one write
        if head:
            yield b"".join(sse_frame(event.id, event.name, event.data) for event in head)
        async for event in events:
            yield sse_frame(event.id, event.name, event.data)


_detached: set[asyncio.Task[None]] = set()  # turns that run on without their client (onDisconnect "continue")


async def _kept_running(events: AsyncGenerator[TurnEvent]) -> AsyncGenerator[TurnEvent]:
    """The turn's events, from a task of its own: the turn runs to its end (recorded, billed in full,
    its events kept for replay) even when this listener goes away; its lease is renewed as for any
    live turn, so maintenance fails it if this process dies."""
    queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
    listening = True

    async def run() -> None:
        try:
            async with aclosing(events):
                async for event in events:
                    if listening:
                        queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())
    _detached.add(task)
    task.add_done_callback(_detached.discard)
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        listening = False


async def stream_turn(turn: PreparedTurn, *, keep_running: bool = False) -> HttpResponseBase:
    """Runs the turn up to its first model output. A failure before any output (the provider is
    down, a later refusal) is still an ordinary problem response; otherwise the events stream.
    ``keep_running``: the turn goes on if the client goes away (else it is cancelled)."""
    events = _kept_running(run_turn(turn=turn)) if keep_running else run_turn(turn=turn)
    head: list[TurnEvent] = []
    async for event in events:
        head.append(event)
        if event.name != "session":
            break
    if head and head[-1].error is not None:  # nothing streamed yet: the error's own status
        await events.aclose()
        return error_response(head[-1].error)
    response = StreamingHttpResponse(_sse_bytes(head, events), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class SendView(OrgAPIView):
    """A send endpoint: the caller (a member or an org API key) sends a message to a specialist."""

    errors = (SpecialistInactiveError, IdempotencyKeyReusedError, RateLimitedError, *REFUSALS)
    queued = False
    scope = ""

    def send(self, request: Request) -> SendResult:
        return send_message(
            principal=self.principal,
            body=request.data,
            idempotency_key=request.headers.get("Idempotency-Key"),
            scope=self.scope,
            queued=self.queued,
        )


SSE_EVENT_SCHEMA = {
    "type": "object",
    "description": "One Server-Sent Event; `data` is one line of JSON whose shape depends on `event`.",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string"},
        "event": {
            "type": "string",
            "enum": ["session", "fallback", "delta", "tool_call", "tool_result", "usage", "done", "error"],
        },
        "data": {"type": "string"},
    },
}

STREAM_MEDIA_TYPES = ("text/event-stream", "application/json", "application/problem+json")
NOT_ACCEPTABLE = "This endpoint answers text/event-stream (or application/json, application/problem+json)."


_body_parsers = [parser() for parser in api_settings.DEFAULT_PARSER_CLASSES]  # type: ignore[operator]  # classes, not names


class AsyncView(Protocol):
    """The async callable ``AsyncHandlers.as_view`` gives Django, marked as DRF marks its own."""

    cls: type
    initkwargs: dict[str, object]
    csrf_exempt: bool

    async def __call__(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase: ...


class AsyncHandlers:
    """For an org-aware view some of whose methods (``async_methods``) are async handlers of Django's
    request: ``as_view`` gives Django an async callable that awaits them on the server's event loop
    (HEAD is GET's); every other method (OPTIONS, the 405s) is served by DRF like any API view."""

    async_methods: frozenset[str] = frozenset()
    view_is_async = False  # DRF's own view (the other methods) stays sync: it runs in a thread

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:  # Django's and DRF's hook, each typed its own way
        drf_view = super().as_view(**initkwargs)  # type: ignore[misc]  # DRF's, of the view this is mixed into

        async def view(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
            method = request.method or ""
            if method not in cls.async_methods:
                return cast(HttpResponseBase, await sync_to_async(drf_view)(request, *args, **kwargs))
            handler = getattr(cls(**initkwargs), "get" if method == "HEAD" else method.lower())
            return cast(HttpResponseBase, await handler(request, *args, **kwargs))

        endpoint = cast(AsyncView, view)  # marked below: what DRF's own as_view records, for the schema and routes
        endpoint.cls, endpoint.initkwargs, endpoint.csrf_exempt = cls, initkwargs, True
        return endpoint


class ChatStreamView(AsyncHandlers, SendView):
    """An async view (``AsyncHandlers``): its POST is ``post`` below (the prepare phase in one thread
    hop, then the turn streams on the server's event loop, its record phase one more hop at the
    end). The caller is resolved by the one way in (``orgs.principal.authenticate``: a token's user
    and membership, or an org API key and its org, in one query)."""

    errors = (*SendView.errors, NotAcceptableError, ProviderError, MCPUnreachableError)
    scope = "chat-stream"
    view_is_async = False  # DRF's part (OPTIONS, the 405s) is sync; the POST is served by as_view's own coroutine
    async_methods = frozenset({"POST"})

    def prepare_stream(self, request: HttpRequest) -> HttpResponseBase | SendResult:
        """Prepare, in one thread hop: the caller, then the send (throttle, body, Idempotency-Key,
        one transaction for the session, both messages and the first hold). Its connection is given
        back before the stream starts: tokens flow without one held."""
        try:
            principal = authenticate(bearer(request), org_header=request.headers.get("X-Org-Id"))
            bind_log_context(principal)
            sent = send_message(
                principal=principal,
                body=Request(request, parsers=_body_parsers).data,
                idempotency_key=request.headers.get("Idempotency-Key"),
                scope=self.scope,
                queued=False,
            )
            if sent.turn is None:
                return JsonResponse(camelize(sent.body), status=sent.status)
            return sent
        except Exception as exc:
            return exception_handler(exc, {})
        finally:
            release_connections()

    @extend_schema(
        request=SendSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                SSE_EVENT_SCHEMA,
                description=SSE_DESCRIPTION,
                examples=[
                    OpenApiExample(
                        "A short turn",
                        value='id: 1\nevent: session\ndata: {"sessionId":"…","userMessageId":"…","messageId":"…"}\n\n'
                        'id: 2\nevent: delta\ndata: {"text":"Hello"}\n\n'
                        'id: 3\nevent: usage\ndata: {"inputTokens":12,"outputTokens":3,"credits":"0.000018",'
                        '"balance":"99.999982","model":"gpt-4o-mini"}\n\n'
                        'id: 4\nevent: done\ndata: {"messageId":"…","finishReason":"stop"}\n\n',
                    )
                ],
            ),
            (200, "application/json"): SentSerializer,
        },
        summary="Send a message and stream the specialist's answer (SSE)",
    )
    async def post(self, request: HttpRequest) -> HttpResponseBase:
        if not accepts_any(request, STREAM_MEDIA_TYPES):
            return error_response(NotAcceptableError(NOT_ACCEPTABLE))
        sent = await sync_to_async(self.prepare_stream)(request)
        if isinstance(sent, HttpResponseBase):
            return sent
        assert sent.turn is not None  # a send that was not a repeat
        return await stream_turn(sent.turn, keep_running=sent.keep_running)


class ChatAsyncView(SendView):
    scope = "chat-async"
    queued = True

    @extend_schema(
        request=SendSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: SentSerializer},
        summary="Send a message; a worker runs the turn (watch it over the WebSocket or poll the session)",
    )
    def post(self, request: Request) -> Response:
        sent = self.send(request)
        return Response(sent.body, status=sent.status)
