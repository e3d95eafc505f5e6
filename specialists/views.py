from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing.errors import REFUSALS
from chat.providers.base import ProviderError
from leancore.api.views import OrgViewSet
from mcps.models import Tool
from orgs.models import Role
from specialists import selectors, services
from specialists.filters import SpecialistFilter
from specialists.models import Specialist
from specialists.serializers import (
    SpecialistDetailSerializer,
    SpecialistSerializer,
    SpecialistWriteSerializer,
    WizardDraftSerializer,
    WizardResponseSerializer,
    WizardSerializer,
)
from specialists.wizard import LLMBadOutputError, draft_specialist


class SpecialistViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    OrgViewSet,
):
    errors = {"wizard": (*REFUSALS, ProviderError, LLMBadOutputError)}
    queryset = Specialist.objects.alive().prefetch_related("tools")
    serializer_class = SpecialistSerializer
    filterset_class = SpecialistFilter
    ordering_fields = ["created_at", "name", "updated_at"]
    ordering = ["-created_at"]
    required_roles = {"create": Role.ADMIN, "update": Role.ADMIN, "destroy": Role.ADMIN, "wizard": Role.ADMIN}

    def _detail(self, specialist: Specialist) -> dict:
        specialist = self.get_queryset().get(pk=specialist.pk)
        usage = selectors.usage_this_period(specialist=specialist)
        return SpecialistDetailSerializer(specialist, context={"usage": usage}).data

    @extend_schema(responses={200: SpecialistDetailSerializer}, summary="One specialist, with usage this period")
    def retrieve(self, request: Request, *args: object, **kwargs: object) -> Response:
        return Response(self._detail(self.get_object()))

    @extend_schema(
        request=SpecialistWriteSerializer, responses={201: SpecialistSerializer}, summary="Hire a specialist (admin)"
    )
    def create(self, request: Request) -> Response:
        serializer = SpecialistWriteSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        specialist = services.create_specialist(
            org=self.org, created_by=request.user, data=dict(serializer.validated_data)
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
        services.update_specialist(specialist=specialist, data=dict(serializer.validated_data))
        return Response(self._detail(specialist))

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
    def wizard(self, request: Request) -> Response:
        serializer = WizardSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = draft_specialist(org=self.org, user=request.user, brief=data["brief"], model=data.get("model") or None)
        if data["create"]:
            draft = WizardDraftSerializer(data=result.draft)
            draft.is_valid(raise_exception=True)
            values = dict(draft.validated_data)
            tool_ids = values.pop("tool_ids")
            values["tools"] = list(Tool.objects.filter(organization=self.org, pk__in=tool_ids))
            specialist = services.create_specialist(org=self.org, created_by=request.user, data=values)
            return Response(self._detail(specialist), status=status.HTTP_201_CREATED)
        usage = {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens, "credits": result.credits}
        return Response(WizardResponseSerializer({"draft": result.draft, "usage": usage}).data)

    @extend_schema(summary="Let a specialist go (admin); past chats and usage stay readable")
    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.delete_specialist(specialist=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
