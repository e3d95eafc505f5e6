from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import PermissionDeniedError
from core.views import validated_as
from orgs.api import OrgViewSet
from orgs.models import Role
from specialists import services
from specialists.filters import SpecialistFilter
from specialists.models import Specialist
from specialists.serializers import (
    SpecialistDetailSerializer,
    SpecialistSerializer,
    SpecialistWriteSerializer,
    specialist_detail,
)


@extend_schema_view(
    list=extend_schema(
        summary="The organization's specialists",
        description=(
            "Filter by `status` and `model`; `search` looks in the name and title. Deleted specialists are not listed."
        ),
    ),
)
class SpecialistViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    OrgViewSet[Specialist],
):
    queryset = Specialist.objects.alive().prefetch_related("tools")
    serializer_class = SpecialistSerializer
    filterset_class = SpecialistFilter
    ordering_fields = ["created_at", "name", "updated_at"]
    ordering = ["-created_at"]
    required_roles = {"create": Role.ADMIN, "update": Role.ADMIN, "destroy": Role.ADMIN}

    def scope_queryset(self, queryset: QuerySet[Specialist]) -> QuerySet[Specialist]:
        """A key limited to some specialists sees only those (another's id is 404)."""
        allowed = self.org_context.allowed_specialist_ids
        if self.action == "list":  # a page reads its tool ids in one query (SpecialistPageSerializer)
            queryset = queryset.prefetch_related(None)
        return queryset if allowed is None else queryset.filter(pk__in=allowed)

    def _detail(self, specialist: Specialist) -> dict[str, object]:
        return specialist_detail(self.get_queryset().get(pk=specialist.pk))

    @extend_schema(responses={200: SpecialistDetailSerializer}, summary="One specialist, with usage this period")
    def retrieve(self, request: Request, *args: object, **kwargs: object) -> Response:
        return Response(self._detail(self.get_object()))

    @extend_schema(
        request=SpecialistWriteSerializer, responses={201: SpecialistSerializer}, summary="Hire a specialist (admin)"
    )
    def create(self, request: Request) -> Response:
        if self.org_context.allowed_specialist_ids is not None:
            raise PermissionDeniedError("An API key limited to some specialists cannot hire more.")
        serializer = SpecialistWriteSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        specialist = services.create_specialist(
            org=self.org, created_by=self.org_context.user, data=validated_as(serializer, services.SpecialistFields)
        )
        return Response(self._detail(specialist), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=SpecialistWriteSerializer,
        responses={200: SpecialistSerializer},
        summary="Update a specialist (admin); omitted fields keep their values",
    )
    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        specialist = self.get_object()
        serializer = SpecialistWriteSerializer(
            specialist, data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        services.update_specialist(specialist=specialist, data=validated_as(serializer, services.SpecialistFields))
        return Response(self._detail(specialist))

    @extend_schema(summary="Let a specialist go (admin); past chats and usage stay readable")
    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.delete_specialist(specialist=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
