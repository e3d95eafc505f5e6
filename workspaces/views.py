from __future__ import annotations

import uuid

import django_filters
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from djangorestframework_camel_case.parser import CamelCaseMultiPartParser
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from core.errors import NotFoundError, RateLimitedError
from core.filters import ordered_page
from core.row_counts import related_count
from core.throttles import UploadThrottle
from core.views import validated_as
from files.uploads import FileTooLargeError, StorageQuotaExceededError
from orgs.api import OrgViewSet
from workspaces import services
from workspaces.models import Workspace, WorkspaceFile
from workspaces.serializers import (
    HAS_TEXT,
    FileUploadSerializer,
    WorkspaceFileSerializer,
    WorkspaceSerializer,
    WorkspaceWriteSerializer,
)


class WorkspaceFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    search = django_filters.CharFilter(method="filter_search", help_text="Name or description contains.")

    class Meta:
        model = Workspace
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet[Workspace], name: str, value: str) -> QuerySet[Workspace]:
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


WITHOUT_COUNTS = frozenset({"files", "upload", "delete_file", "destroy"})  # actions that show no counts


@extend_schema_view(
    list=extend_schema(
        summary="The organization's workspaces",
        description="Each with its file and chat counts; `search` looks in the name and description.",
    ),
    retrieve=extend_schema(
        summary="One workspace",
    ),
)
class WorkspaceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgViewSet[Workspace]):
    errors = {"upload": (FileTooLargeError, StorageQuotaExceededError, RateLimitedError)}
    upload_actions = ("upload",)  # an over-large body here is a file too large (core.middleware)
    queryset = Workspace.objects.all()
    serializer_class = WorkspaceSerializer
    page_serializers = {"files": WorkspaceFileSerializer}  # the page the files action answers
    filterset_class = WorkspaceFilter
    ordering = ["-created_at"]

    def scope_queryset(self, queryset: QuerySet[Workspace]) -> QuerySet[Workspace]:
        """Each workspace with its file and thread counts, but for the actions on its files and its
        deletion, which show neither (a workspace's files page counts no file twice)."""
        if self.action in WITHOUT_COUNTS and api_settings.ORDERING_PARAM not in self.request.query_params:
            return queryset  # nothing to count and nothing to order by
        counts = {"file_count": related_count(Workspace, "files"), "thread_count": related_count(Workspace, "sessions")}
        if self.action in WITHOUT_COUNTS:  # named, never read: a stray ``?ordering=fileCount`` still orders
            return queryset.alias(**counts)
        return queryset.annotate(**counts)

    def _out(self, workspace: Workspace) -> dict[str, object]:
        return WorkspaceSerializer(self.get_queryset().get(pk=workspace.pk)).data

    def _workspace(self) -> Workspace:
        return self.get_object()

    @extend_schema(request=WorkspaceWriteSerializer, responses={201: WorkspaceSerializer}, summary="Create a workspace")
    def create(self, request: Request) -> Response:
        serializer = WorkspaceWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        workspace = services.create_workspace(
            org=self.org, name=data["name"], description=data.get("description", ""), **self.org_context.creator()
        )
        return Response(self._out(workspace), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=WorkspaceWriteSerializer, responses={200: WorkspaceSerializer}, summary="Update (creator or admin)"
    )
    def update(self, request: Request, pk: uuid.UUID) -> Response:
        workspace = self._workspace()
        serializer = WorkspaceWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.update_workspace(
            context=self.org_context,
            workspace=workspace,
            data=validated_as(serializer, services.WorkspaceChanges),
        )
        return Response(self._out(workspace))

    @extend_schema(summary="Delete a workspace (creator or admin); its files leave storage")
    def destroy(self, request: Request, pk: uuid.UUID) -> Response:
        services.delete_workspace(context=self.org_context, workspace=self._workspace())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: WorkspaceFileSerializer(many=True)}, summary="The workspace's files")
    def files(self, request: Request, pk: uuid.UUID) -> Response:
        files = (  # each file's extracted text (up to UPLOAD_EXTRACT_MAX_CHARS) is never read: only whether it has one
            self.of_parent(WorkspaceFile.objects.for_org(self.org), parent=Workspace, field="workspace")
            .defer("text")
            .annotate(**{HAS_TEXT: ExpressionWrapper(~Q(text=""), output_field=BooleanField())})
            .order_by("-created_at")
        )
        paginator = self.paginator  # the paginator's own method: the rows are another model's than the view's
        ordered = ordered_page(request, files, self)
        page = paginator.paginate_queryset(ordered, request, view=self) if paginator is not None else None
        return self.get_paginated_response(WorkspaceFileSerializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": FileUploadSerializer},
        responses={201: WorkspaceFileSerializer},
        summary="Add a file; its text becomes context for the workspace's chats",
    )
    def upload(self, request: Request, pk: uuid.UUID) -> Response:
        workspace = self._workspace()
        serializer = FileUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = services.add_file(
            context=self.org_context, workspace=workspace, upload=serializer.validated_data["file"]
        )
        return Response(WorkspaceFileSerializer(item).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Delete a file (its uploader, the workspace's creator or an admin)")
    def delete_file(self, request: Request, pk: uuid.UUID, file_id: uuid.UUID) -> Response:
        workspace = self._workspace()
        item = (
            WorkspaceFile.objects.for_org(self.org)
            .filter(workspace=workspace, pk=file_id)
            .select_related("workspace")
            .first()
        )
        if item is None:
            raise NotFoundError
        services.delete_file(context=self.org_context, item=item)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_parsers(self) -> list[BaseParser]:
        if getattr(self, "action", None) == "upload" or self.request is None:
            return [CamelCaseMultiPartParser()]
        return super().get_parsers()

    def get_throttles(self) -> list[BaseThrottle]:
        return [UploadThrottle()] if getattr(self, "action", None) == "upload" else super().get_throttles()
