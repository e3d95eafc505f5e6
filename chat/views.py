from __future__ import annotations

from typing import cast

from django.db.models import Q, QuerySet
from djangorestframework_camel_case.parser import CamelCaseMultiPartParser
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing.errors import REFUSALS
from chat import selectors, services
from chat.models import Artifact, ChatSession
from chat.providers.base import ProviderError
from chat.serializers import (
    ArtifactSerializer,
    AttachmentSerializer,
    SessionDetailSerializer,
    SessionSerializer,
    UploadSerializer,
)
from chat.wizard import LLMBadOutputError, draft_specialist
from core.errors import (
    InvalidStateError,
    PermissionDeniedError,
    ValidationFailed,
)
from core.throttles import UploadThrottle
from files.uploads import FileTooLargeError, StorageQuotaExceededError
from mcps.models import Tool
from orgs.api import OrgAPIView, OrgViewSet
from orgs.models import Role
from specialists import services as specialist_services
from specialists.serializers import (
    SpecialistDetailSerializer,
    WizardDraftSerializer,
    WizardResponseSerializer,
    WizardSerializer,
    specialist_detail,
)
from workspaces.models import Workspace


@extend_schema_view(
    list=extend_schema(
        summary="Your chat sessions (admins: every session of the organization), newest first",
        description="Filter by `specialistId` and `workspaceId`; each has its message count.",
    ),
    retrieve=extend_schema(
        summary="One chat session with its messages, tool calls and usage per turn",
    ),
)
class SessionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgViewSet[ChatSession]
):
    queryset = ChatSession.objects.all()
    serializer_class = SessionSerializer
    filterset_class = selectors.SessionFilter
    errors = {"delete": (InvalidStateError,)}  # a turn still running in the session

    def scope_queryset(self, queryset: QuerySet[ChatSession]) -> QuerySet[ChatSession]:
        queryset = selectors.readable_sessions(queryset, context=self.org_context)
        queryset = queryset.order_by("-created_at")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(selectors.messages_prefetch())
        return queryset

    def get_serializer_class(self) -> type[SessionSerializer]:
        return SessionDetailSerializer if self.action == "retrieve" else SessionSerializer

    @extend_schema(summary="Delete a chat session (its owner or an admin)")
    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
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
            "schema after one retry is refused."
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


class WorkspaceThreadsView(mixins.ListModelMixin, OrgViewSet[ChatSession]):
    """A workspace's chats, as far as the caller may read them (served by chat, which knows sessions)."""

    queryset = ChatSession.objects.all()
    serializer_class = SessionSerializer

    def scope_queryset(self, queryset: QuerySet[ChatSession]) -> QuerySet[ChatSession]:
        readable = selectors.readable_sessions(queryset, context=self.org_context)
        return self.of_parent(readable, parent=Workspace, field="workspace").order_by("-created_at")

    @extend_schema(summary="The workspace's chats the caller may read")
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)


class WorkspaceArtifactsView(mixins.ListModelMixin, OrgViewSet[Artifact]):
    """What specialists saved in a workspace (served by chat, whose tool saves them)."""

    queryset = Artifact.objects.all()
    serializer_class = ArtifactSerializer

    def scope_queryset(self, queryset: QuerySet[Artifact]) -> QuerySet[Artifact]:
        sessions = selectors.readable_sessions(ChatSession.objects.for_org(self.org), context=self.org_context)
        queryset = self.of_parent(queryset, parent=Workspace, field="workspace")
        queryset = queryset.filter(Q(session__isnull=True) | Q(session__in=sessions))
        allowed = self.org_context.allowed_specialist_ids
        if allowed is not None:  # a key limited to some specialists: theirs only
            queryset = queryset.filter(Q(specialist__isnull=True) | Q(specialist_id__in=allowed))
        return queryset.order_by("-created_at")

    @extend_schema(summary="What specialists saved here")
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)
