from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import Manager
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import CreditField
from core.serializers import PlainReadModelSerializer
from mcps.models import Tool
from orgs.fields import OrgRelatedField
from specialists import selectors
from specialists.models import Specialist
from specialists.services import MAX_FALLBACK_MODELS

WRITE_FIELDS = [
    "name",
    "title",
    "description",
    "instructions",
    "model",
    "fallback_models",
    "temperature",
    "max_output_tokens",
    "status",
    "tool_ids",
    "monthly_credit_limit",
]


FALLBACK_MODELS_HELP = (
    "Active models tried in order when `model` fails before its first output (at most "
    f"{MAX_FALLBACK_MODELS}, none repeated, not `model` itself)."
)


class SpecialistPageSerializer(serializers.ListSerializer[list[Specialist]]):
    """A page of specialists: the tool ids of all its rows read in one query."""

    page_tool_ids: dict[uuid.UUID, list[str]] | None = None

    def to_representation(self, data: Manager[Specialist] | Iterable[Specialist]) -> list[dict[str, object]]:
        rows = list(data.all() if isinstance(data, Manager) else data)
        org_ids = {row.organization_id for row in rows}
        self.page_tool_ids = (
            selectors.tool_ids_by_specialist(org_id=org_ids.pop(), specialist_ids=[row.pk for row in rows])
            if len(org_ids) == 1
            else None  # an empty page (never one of several orgs: each row would read its own)
        )
        return super().to_representation(rows)


class SpecialistSerializer(PlainReadModelSerializer[Specialist]):
    pages_read_as_rows = True
    tool_ids = serializers.SerializerMethodField()
    fallback_models = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text=FALLBACK_MODELS_HELP
    )
    monthly_credit_limit = CreditField(allow_null=True)
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)

    class Meta:
        model = Specialist
        fields = ["id", *WRITE_FIELDS, "created_by", "created_at", "updated_at"]
        list_serializer_class = SpecialistPageSerializer

    def get_tool_ids(self, specialist: Specialist) -> list[str]:
        page_tool_ids: dict[uuid.UUID, list[str]] | None = getattr(self.parent, "page_tool_ids", None)
        if page_tool_ids is not None:  # a page's, read for all its rows at once
            return page_tool_ids.get(specialist.pk, [])
        # one specialist's tools, prefetched: read them without building a related manager
        prefetched = getattr(specialist, "_prefetched_objects_cache", {}).get("tools")
        return [str(tool.pk) for tool in (specialist.tools.all() if prefetched is None else prefetched)]


class SpecialistUsageSerializer(serializers.Serializer[object]):
    credits_this_period = CreditField()
    messages_this_period = serializers.IntegerField()


class SpecialistDetailSerializer(SpecialistSerializer):
    usage = serializers.SerializerMethodField()

    class Meta(SpecialistSerializer.Meta):
        fields = [*SpecialistSerializer.Meta.fields, "usage"]

    @extend_schema_field(SpecialistUsageSerializer)
    def get_usage(self, specialist: Specialist) -> dict[str, object]:
        return SpecialistUsageSerializer(self.context["usage"]).data


class SpecialistWriteSerializer(serializers.ModelSerializer[Specialist]):
    tool_ids = serializers.ListField(
        child=OrgRelatedField(model=Tool), required=False, source="tools", help_text="Enabled MCP tool ids of the org."
    )
    monthly_credit_limit = CreditField(required=False, allow_null=True, min_value=0)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    max_output_tokens = serializers.IntegerField(required=False, min_value=1)
    fallback_models = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=MAX_FALLBACK_MODELS,
        help_text=FALLBACK_MODELS_HELP,
    )

    class Meta:
        model = Specialist
        fields = WRITE_FIELDS
        extra_kwargs = {"name": {"required": True}, "model": {"required": True}}


class WizardSerializer(serializers.Serializer[object]):
    brief = serializers.CharField(max_length=5000)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    create = serializers.BooleanField(required=False, default=False)  # type: ignore[assignment]  # the body's field, not the method


class WizardDraftSerializer(serializers.Serializer[object]):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    instructions = serializers.CharField()
    model = serializers.CharField()
    temperature = serializers.FloatField()
    max_output_tokens = serializers.IntegerField()
    tool_ids = serializers.ListField(child=serializers.UUIDField())


class WizardUsageSerializer(serializers.Serializer[object]):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    credits = CreditField()


class WizardResponseSerializer(serializers.Serializer[object]):
    draft = WizardDraftSerializer()
    usage = WizardUsageSerializer()


def specialist_detail(specialist: Specialist) -> dict[str, object]:
    """The body of ``GET /specialists/{id}``: the specialist and its usage this period."""
    usage = selectors.usage_this_period(specialist=specialist)
    return SpecialistDetailSerializer(specialist, context={"usage": usage}).data
