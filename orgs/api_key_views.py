"""``/orgs/{orgId}/api-keys``: an org admin's keys (the secret only in the 201)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from orgs import api_keys
from orgs.api import OrgViewSet
from orgs.models import API_KEY_ROLES, ApiKey, Role


class ApiKeySerializer(serializers.ModelSerializer):
    specialist_ids = serializers.ListField(child=serializers.UUIDField(), allow_null=True, read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "role",
            "specialist_ids",
            "monthly_credit_limit",
            "expires_at",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class CreatedApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="`lc_<prefix>_<secret>`: shown only in this answer.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=API_KEY_ROLES, default=Role.MEMBER)
    specialist_ids = serializers.ListField(
        child=serializers.UUIDField(),
        allow_null=True,
        required=False,
        max_length=1000,
        help_text="The specialists the key may use (null or [] = every one); each must be the org's.",
    )
    monthly_credit_limit = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=0, allow_null=True, required=False
    )
    expires_at = serializers.DateTimeField(allow_null=True, required=False)


class ApiKeyFilter(django_filters.FilterSet):
    revoked = django_filters.BooleanFilter(
        field_name="revoked_at", lookup_expr="isnull", exclude=True, help_text="Revoked keys only (or not)."
    )

    class Meta:
        model = ApiKey
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(summary="The organization's API keys (admin), newest first, revoked ones included"),
    retrieve=extend_schema(summary="One API key (admin); never its secret"),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgViewSet):
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilter
    org_path_kwarg = "org_id"
    people_only = frozenset({"*"})  # a key never manages keys
    required_roles = {"list": Role.ADMIN, "retrieve": Role.ADMIN, "create": Role.ADMIN, "destroy": Role.ADMIN}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.order_by("-created_at")

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={201: CreatedApiKeySerializer},
        summary="Create an API key (admin); its secret is in this answer only",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = api_keys.create_api_key(context=self.org_context, **body.validated_data)
        answer = CreatedApiKeySerializer(created.key).data
        answer["key"] = created.secret
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke an API key (admin), at once; the record stays")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        api_keys.revoke_api_key(context=self.org_context, key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
