"""``/orgs/{orgId}/api-keys``: an org admin's keys (the secret only in the 201)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.credits import credit_str
from core.fields import CreditField
from core.pagination import listed_page
from core.serializers import PlainReadModelSerializer
from orgs import api_keys, selectors
from orgs.api import OrgViewSet
from orgs.models import API_KEY_ROLES, ApiKey, Role


class ApiKeySerializer(PlainReadModelSerializer[ApiKey]):
    """A key. ``spentThisPeriod`` comes from the context's ``spend`` ({key id: credits}, the page's
    keys read in one query) or, for a key not in it, is read for that key alone."""

    pages_read_as_rows = True
    specialist_ids = serializers.ListField(child=serializers.UUIDField(), allow_null=True, read_only=True)
    spent_this_period = serializers.SerializerMethodField(
        help_text="What the turns started with this key cost this period (the calendar month in UTC)."
    )

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "role",
            "specialist_ids",
            "monthly_credit_limit",
            "spent_this_period",
            "expires_at",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields

    @extend_schema_field(CreditField())
    def get_spent_this_period(self, key: ApiKey) -> str:
        spend = self.context.get("spend") or {}
        if key.pk not in spend:
            spend = selectors.key_spent_this_period(org_id=key.organization_id, key_ids=[key.pk])
        return credit_str(spend[key.pk])


class CreatedApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="`lc_<prefix>_<secret>`: shown only in this answer.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer[object]):
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


class ApiKeyFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no types
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
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgViewSet[ApiKey]):
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilter
    org_path_kwarg = "org_id"
    people_only = frozenset({"*"})  # a key never manages keys
    required_roles = {"list": Role.ADMIN, "retrieve": Role.ADMIN, "create": Role.ADMIN, "destroy": Role.ADMIN}

    def scope_queryset(self, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        return queryset.order_by("-created_at")

    def get_serializer_context(self) -> dict[str, object]:
        """The spend of the page's keys, in one query (a single key's is read by the serializer)."""
        context = dict(super().get_serializer_context())
        page = listed_page(self)
        if page:
            context["spend"] = selectors.key_spent_this_period(org_id=self.org.pk, key_ids=[key.pk for key in page])
        return context

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={201: CreatedApiKeySerializer},
        summary="Create an API key (admin); its secret is in this answer only",
    )
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = api_keys.create_api_key(context=self.org_context, **body.validated_data)
        answer = CreatedApiKeySerializer(created.key).data
        answer["key"] = created.secret
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke an API key (admin), at once; the record stays")
    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        api_keys.revoke_api_key(context=self.org_context, key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
