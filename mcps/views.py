from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import NotFoundError, RateLimitedError, ServiceUnavailableError
from core.filters import ordered_page
from core.row_counts import related_count
from core.throttles import MCPSyncThrottle, MCPWriteThrottle
from core.url_guard import UrlNotAllowedError
from core.views import UserViewSet, validated_as
from mcps import services
from mcps.models import CatalogEntry, Connection, Tool
from mcps.serializers import (
    CatalogEntrySerializer,
    ConnectionCreateSerializer,
    ConnectionSerializer,
    ConnectionWriteSerializer,
    SyncResultSerializer,
    ToolPatchSerializer,
    ToolSerializer,
)
from mcps.services import MCPUnreachableError
from orgs.api import OrgViewSet
from orgs.models import Role

ADMIN_ACTIONS = ("create", "update", "destroy", "sync", "tool_update")
WITHOUT_TOOL_COUNT = frozenset({"tools", "tool_update", "sync", "destroy"})  # actions that show no tool count


@extend_schema_view(
    list=extend_schema(
        summary="The organization's MCP connections",
        description="Credentials are never returned: `hasCredentials` says whether some are stored. Each `url` is "
        "shown without userinfo and with every query value as `***` (the stored URL keeps them).",
    ),
)
class ConnectionViewSet(mixins.ListModelMixin, OrgViewSet[Connection]):
    """``/orgs/{orgId}/mcps…``: the org is in the path; another org's (or an unknown) org is a 404."""

    errors = {
        "create": (UrlNotAllowedError, ServiceUnavailableError, RateLimitedError),
        "update": (UrlNotAllowedError, ServiceUnavailableError, RateLimitedError),
        "sync": (MCPUnreachableError, RateLimitedError),
    }

    org_path_kwarg = "org_id"
    queryset = Connection.objects.all()
    serializer_class = ConnectionSerializer
    page_serializers = {"tools": ToolSerializer}  # the page a connection's tools action answers
    required_roles = dict.fromkeys(ADMIN_ACTIONS, Role.ADMIN)

    def scope_queryset(self, queryset: QuerySet[Connection]) -> QuerySet[Connection]:
        """Each connection with its tool count, but for the actions on its tools, its sync and its
        deletion, which do not show it (a page of a connection's tools counts none of them twice)."""
        queryset = queryset.order_by("-created_at")
        if self.action in WITHOUT_TOOL_COUNT:  # named, never read: a stray ``?ordering=toolCount`` still orders
            return queryset.alias(tool_count=related_count(Connection, "tools"))
        return queryset.annotate(tool_count=related_count(Connection, "tools"))

    def _out(self, connection: Connection) -> dict[str, object]:
        return ConnectionSerializer(self.get_queryset().get(pk=connection.pk)).data

    @extend_schema(
        request=ConnectionCreateSerializer,
        responses={201: ConnectionSerializer},
        summary="Connect an MCP server (admin)",
    )
    def create(self, request: Request, org_id: uuid.UUID) -> Response:
        MCPWriteThrottle().check(request, self)  # after the org and role checks (``initial``)
        serializer = ConnectionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = services.create_connection(org=self.org, data=validated_as(serializer, services.ConnectionFields))
        return Response(self._out(connection), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ConnectionWriteSerializer, responses={200: ConnectionSerializer}, summary="Update a connection (admin)"
    )
    def update(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        connection = self.get_object()
        MCPWriteThrottle().check(request, self)  # once the org, role and connection are known
        serializer = ConnectionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = services.update_connection(
            connection=connection, data=validated_as(serializer, services.ConnectionFields)
        )
        return Response(self._out(connection))

    @extend_schema(summary="Remove a connection (admin); its tools leave every specialist")
    def destroy(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        services.delete_connection(connection=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: SyncResultSerializer}, summary="Sync the server's tools (admin)")
    def sync(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        connection = self.get_object()
        MCPSyncThrottle().check(request, self)  # once the org, role and connection are known
        result = services.sync_connection(connection=connection)
        return Response(SyncResultSerializer(result).data)

    @extend_schema(responses={200: ToolSerializer(many=True)}, summary="The connection's stored tools")
    def tools(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID) -> Response:
        stored = self.of_parent(Tool.objects.for_org(self.org), parent=Connection, field="connection")
        tools = ordered_page(request, stored.order_by("name"), self)
        paginator = self.paginator  # the paginator's own method: the rows are another model's than the view's
        page = paginator.paginate_queryset(tools, request, view=self) if paginator is not None else None
        return self.get_paginated_response(ToolSerializer(page, many=True).data)

    @extend_schema(
        request=ToolPatchSerializer,
        responses={200: ToolSerializer},
        summary="Allow or block a tool for the org (admin)",
    )
    def tool_update(self, request: Request, org_id: uuid.UUID, pk: uuid.UUID, tool_id: uuid.UUID) -> Response:
        connection = self.get_object()
        tool = Tool.objects.for_org(self.org).filter(connection=connection, pk=tool_id).first()
        if tool is None:
            raise NotFoundError
        serializer = ToolPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tool = services.set_tool_enabled(tool=tool, enabled=serializer.validated_data["enabled"])
        return Response(ToolSerializer(tool).data)


@extend_schema_view(
    list=extend_schema(
        summary="Known MCP servers to connect with one click",
        description="A connection created with a `catalogKey` takes its URL, transport and auth type from here.",
    ),
)
class CatalogViewSet(mixins.ListModelMixin, UserViewSet[CatalogEntry]):
    allows_api_keys = True  # a catalogue a program may read with its key
    queryset = CatalogEntry.objects.order_by("name")
    serializer_class = CatalogEntrySerializer

    def filter_queryset[Row](self, queryset: QuerySet[CatalogEntry, Row]) -> QuerySet[CatalogEntry, Row]:
        search = self.request.query_params.get("search")
        if search:
            queryset = queryset.filter(Q(name__icontains=search) | Q(key__icontains=search))
        return super().filter_queryset(queryset)  # and ``ordering``, as on every list
