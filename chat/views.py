from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from djangorestframework_camel_case.parser import CamelCaseMultiPartParser
from djangorestframework_camel_case.util import camelize
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.idempotency import IDEMPOTENCY_HEADER, run_idempotent
from billing.errors import REFUSALS
from chat import selectors, services, turns
from chat.jobs import run_queued_turn
from chat.models import Artifact, ChatSession, Message
from chat.pipeline import TurnEvent, run_turn
from chat.providers.base import ProviderError
from chat.serializers import (
    ArtifactSerializer,
    AttachmentSerializer,
    SendBody,
    SendSerializer,
    SentSerializer,
    SessionDetailSerializer,
    SessionSerializer,
    UploadSerializer,
)
from chat.turns import PreparedTurn
from chat.wizard import LLMBadOutputError, draft_specialist
from core.db import release_connections
from core.errors import (
    IdempotencyKeyReusedError,
    InvalidStateError,
    NotAcceptableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ValidationFailed,
    error_response,
    exception_handler,
)
from core.log_context import current_request_id
from core.negotiation import accepts_any
from core.throttles import UploadThrottle, check_chat
from files.uploads import FileTooLargeError, StorageQuotaExceededError
from mcps.models import Tool
from mcps.services import MCPUnreachableError
from orgs.api import OrgAPIView, OrgViewSet
from orgs.models import Role
from orgs.principal import Principal, authenticate, bearer
from specialists import services as specialist_services
from specialists.errors import SpecialistInactiveError
from specialists.serializers import (
    SpecialistDetailSerializer,
    WizardDraftSerializer,
    WizardResponseSerializer,
    WizardSerializer,
    specialist_detail,
)
from workspaces.models import Workspace

SSE_DESCRIPTION = """Server-Sent Events, in this order: `session` {sessionId, userMessageId, messageId} →
any number of `delta` {text}, `tool_call` {id, name, arguments, connectionId}, `tool_result`
{id, result, isError, durationMs} → `usage` {inputTokens, outputTokens, credits, balance} → `done`
{messageId, finishReason}. A failure after the stream started ends with `usage` (if anything was billed)
and `error` {code, detail}. Every event carries an SSE `id:`. Refusals before the stream starts
(400, 402, 403, 404, 409, 429) are ordinary problem+json responses. With an Idempotency-Key that was
already used with the same body, the answer is 200 JSON {sessionId, messageId, status} instead of a second stream."""


def sse_frame(seq: int, name: str, data: dict[str, Any]) -> bytes:
    return f"id: {seq}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _sse_bytes(head: list[TurnEvent], events: AsyncGenerator[TurnEvent]) -> AsyncGenerator[bytes]:
    seq = len(head)
    async with aclosing(events):
        # what came before the first output (the session, then that output): one write
        if head:
            yield b"".join(sse_frame(at, event.name, event.data) for at, event in enumerate(head, 1))
        async for event in events:
            seq += 1
            yield sse_frame(seq, event.name, event.data)


async def stream_turn(turn: PreparedTurn) -> HttpResponseBase:
    """Runs the turn up to its first model output. A failure before any output (the provider is
    down, a later refusal) is still an ordinary problem response; otherwise the events stream."""
    events = run_turn(turn)
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


def _sent_body(session_id: Any, message_id: Any, message_status: str) -> dict[str, str]:
    return {"session_id": str(session_id), "message_id": str(message_id), "status": message_status}


def _replay(record: Any) -> tuple[int, dict]:
    """A repeated send: the first result with the message's current status."""
    body = dict(record.response_body)
    current = Message.objects.filter(pk=body["message_id"]).values_list("status", flat=True).first()
    body["status"] = current or body["status"]
    return record.response_status, body


@dataclass(frozen=True, slots=True)
class SendResult:
    """A send's answer: its status and body, and the turn to run (None when the Idempotency-Key
    replays an earlier send)."""

    status: int
    body: dict
    turn: PreparedTurn | None

    @property
    def replayed(self) -> bool:
        return self.turn is None


def start_send(
    *, principal: Principal, data: SendBody, key: str | None, payload: object, scope: str, queued: bool
) -> SendResult:
    """A send of either endpoint: the turn prepared once per Idempotency-Key."""
    started: list[PreparedTurn] = []

    def action() -> tuple[int, dict]:
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
            transaction.on_commit(lambda: run_queued_turn.enqueue(str(turn.message_id), current_request_id()))
        initial = Message.Status.QUEUED if queued else Message.Status.RUNNING
        return 202 if queued else 200, _sent_body(turn.session_id, turn.message_id, initial)

    (code, body), replayed = run_idempotent(
        caller=principal.caller_id,
        user=principal.user,
        scope=f"{scope}:{principal.org.pk}",
        key=key,
        payload=payload,
        action=action,
        replay=_replay,
    )
    return SendResult(status=code, body=body, turn=None if replayed or not started else started[0])


class _SendView(OrgAPIView):
    errors = (SpecialistInactiveError, IdempotencyKeyReusedError, RateLimitedError, *REFUSALS)
    queued = False
    scope = ""

    def _start(self, request: Request) -> SendResult:
        check_chat(caller_id=self.principal.caller_id, org_id=self.principal.org.pk)
        serializer = SendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return start_send(
            principal=self.principal,
            data=cast(SendBody, serializer.validated_data),
            key=request.headers.get("Idempotency-Key"),
            payload=request.data,
            scope=self.scope,
            queued=self.queued,
        )


SSE_EVENT_SCHEMA = {
    "type": "object",
    "description": "One Server-Sent Event; `data` is one line of JSON whose shape depends on `event`.",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string", "enum": ["session", "delta", "tool_call", "tool_result", "usage", "done", "error"]},
        "data": {"type": "string"},
    },
}

STREAM_MEDIA_TYPES = ("text/event-stream", "application/json", "application/problem+json")
NOT_ACCEPTABLE = "This endpoint answers text/event-stream (or application/json, application/problem+json)."


class ChatStreamView(_SendView):
    """The stream's contract (schema, OPTIONS, methods other than POST). A POST itself is served by
    ``chat_stream_endpoint``, an async view that runs the whole prepare phase in one thread hop."""

    errors = (*_SendView.errors, NotAcceptableError, ProviderError, MCPUnreachableError)
    scope = "chat-stream"

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
                        '"balance":"99.999982"}\n\n'
                        'id: 4\nevent: done\ndata: {"messageId":"…","finishReason":"stop"}\n\n',
                    )
                ],
            ),
            (200, "application/json"): SentSerializer,
        },
        summary="Send a message and stream the specialist's answer (SSE)",
    )
    def post(self, request: Request) -> HttpResponse:
        raise MethodNotAllowed("POST")  # never routed here: chat_stream_endpoint serves POST


_stream_view = ChatStreamView.as_view()
_body_parsers = [parser() for parser in api_settings.DEFAULT_PARSER_CLASSES]  # type: ignore[operator]  # classes, not names


def _prepare_stream(request: HttpRequest) -> HttpResponse | PreparedTurn:
    """Prepare, in one thread hop: the caller (``orgs.principal.authenticate``: the token's user and
    their membership in one query), the throttle, the body, the Idempotency-Key (DRF's order of
    checks), then one transaction for the session, both messages and the first hold (the caller's
    read needs none of its own: one statement, no BEGIN, no savepoint)."""
    try:
        principal = authenticate(bearer(request), org_header=request.headers.get("X-Org-Id"))
        check_chat(caller_id=principal.caller_id, org_id=principal.org.pk)
        body = Request(request, parsers=_body_parsers).data
        serializer = SendSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        sent = start_send(
            principal=principal,
            data=cast(SendBody, serializer.validated_data),
            key=request.headers.get("Idempotency-Key"),
            payload=body,
            scope=ChatStreamView.scope,
            queued=False,
        )
        if sent.turn is None:
            return JsonResponse(camelize(sent.body), status=sent.status)
        return sent.turn
    except Exception as exc:
        return exception_handler(exc, {})
    finally:
        release_connections()  # before the stream starts: tokens flow without a connection held


async def chat_stream_endpoint(request: HttpRequest) -> HttpResponseBase:
    """``POST /api/chat/stream``: the prepare phase in one thread hop, then the turn streams on the
    server's event loop (its record phase is one more hop at the end)."""
    if request.method != "POST":  # OPTIONS and the 405s answer like every other API view
        return await sync_to_async(_stream_view)(request)
    if not accepts_any(request, STREAM_MEDIA_TYPES):
        return error_response(NotAcceptableError(NOT_ACCEPTABLE))
    prepared = await sync_to_async(_prepare_stream)(request)
    if isinstance(prepared, HttpResponse):
        return prepared
    return await stream_turn(prepared)


chat_stream_endpoint.csrf_exempt = True  # type: ignore[attr-defined]
chat_stream_endpoint.cls = ChatStreamView  # type: ignore[attr-defined]  # for the schema and route checks
chat_stream_endpoint.initkwargs = {}  # type: ignore[attr-defined]


class ChatAsyncView(_SendView):
    scope = "chat-async"
    queued = True

    @extend_schema(
        request=SendSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: SentSerializer},
        summary="Send a message; a worker runs the turn (watch it over the WebSocket or poll the session)",
    )
    def post(self, request: Request) -> Response:
        sent = self._start(request)
        return Response(sent.body, status=sent.status)


@extend_schema_view(
    list=extend_schema(
        summary="Your chat sessions (admins: every session of the organization), newest first",
        description="Filter by `specialistId` and `workspaceId`; each has its message count.",
    ),
    retrieve=extend_schema(
        summary="One chat session with its messages, tool calls and usage per turn",
    ),
)
class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgViewSet):
    queryset = ChatSession.objects.all()
    serializer_class = SessionSerializer
    filterset_class = selectors.SessionFilter
    errors = {"delete": (InvalidStateError,)}  # a turn still running in the session

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = selectors.readable_sessions(queryset, context=self.org_context)
        queryset = queryset.order_by("-created_at")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(selectors.messages_prefetch())
        return queryset

    def get_serializer_class(self):  # noqa: ANN201
        return SessionDetailSerializer if self.action == "retrieve" else SessionSerializer

    @extend_schema(summary="Delete a chat session (its owner or an admin)")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.delete_session(context=self.org_context, session=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UploadView(OrgAPIView):
    errors = (FileTooLargeError, StorageQuotaExceededError)
    upload_actions = ("post",)  # an over-large body here is a file too large (core.middleware)
    throttle_classes = [UploadThrottle]
    parser_classes = [CamelCaseMultiPartParser]

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: AttachmentSerializer},
        summary="Upload a file to attach to a message (its text is given to the specialist)",
    )
    def post(self, request: Request) -> Response:
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = None
        if serializer.validated_data.get("session_id"):
            session = (
                selectors.readable_sessions(ChatSession.objects.for_org(self.org), context=self.org_context)
                .filter(pk=serializer.validated_data["session_id"])
                .first()
            )
            if session is None:
                raise ValidationFailed("sessionId", "Not found in this organization.")
        attachment = services.attach_upload(
            context=self.org_context, upload=serializer.validated_data["file"], session=session
        )
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


class SpecialistWizardView(OrgAPIView):
    """The wizard is a turn of the pipeline (billed like a chat) whose answer is a specialist's draft."""

    errors = (*REFUSALS, ProviderError, LLMBadOutputError)
    required_roles = {"post": Role.ADMIN}

    @extend_schema(
        request=WizardSerializer,
        responses={200: WizardResponseSerializer, 201: SpecialistDetailSerializer},
        summary="Draft a specialist from a plain-language brief (admin); create: true saves it",
        description=(
            "The drafting model is `model`, else WIZARD_MODEL, else the cheapest active model whose provider is "
            "configured (remote before local). Billed like a chat. A draft the model cannot produce in the "
            "schema after one retry → 502 `llm_bad_output`."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = WizardSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["create"] and self.org_context.allowed_specialist_ids is not None:
            raise PermissionDeniedError("An API key limited to some specialists cannot hire more.")
        result = draft_specialist(context=self.org_context, brief=data["brief"], model=data.get("model") or None)
        if data["create"]:
            draft = WizardDraftSerializer(data=result.draft)
            draft.is_valid(raise_exception=True)
            values = dict(draft.validated_data)
            tool_ids = values.pop("tool_ids")
            fields = cast(specialist_services.SpecialistFields, values)  # the draft is a specialist's fields
            fields["tools"] = list(Tool.objects.for_org(self.org).filter(pk__in=tool_ids))
            specialist = specialist_services.create_specialist(
                org=self.org, created_by=self.org_context.user, data=fields
            )
            return Response(specialist_detail(specialist), status=status.HTTP_201_CREATED)
        usage = {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens, "credits": result.credits}
        return Response(WizardResponseSerializer({"draft": result.draft, "usage": usage}).data)


class WorkspaceThreadsView(mixins.ListModelMixin, OrgViewSet):
    """A workspace's chats, as far as the caller may read them (served by chat, which knows sessions)."""

    queryset = ChatSession.objects.all()
    serializer_class = SessionSerializer

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        workspace = Workspace.objects.for_org(self.org).filter(pk=self.kwargs["pk"]).first()
        if workspace is None:
            raise NotFoundError
        readable = selectors.readable_sessions(queryset, context=self.org_context)
        return readable.filter(workspace=workspace).order_by("-created_at")

    @extend_schema(summary="The workspace's chats the caller may read")
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)


class WorkspaceArtifactsView(mixins.ListModelMixin, OrgViewSet):
    """What specialists saved in a workspace (served by chat, whose tool saves them)."""

    queryset = Artifact.objects.all()
    serializer_class = ArtifactSerializer

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        workspace = Workspace.objects.for_org(self.org).filter(pk=self.kwargs["pk"]).first()
        if workspace is None:
            raise NotFoundError
        return queryset.filter(workspace=workspace).order_by("-created_at")

    @extend_schema(summary="What specialists saved here")
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)
