from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import PlainReadModelSerializer
from mcps.masking import masked_url
from mcps.models import AuthType, CatalogEntry, Connection, Tool, Transport


class MaskedUrlField(serializers.URLField):
    """The stored URL without its userinfo and with every query value ``***`` (both often hold
    credentials); sending this form back in a PUT keeps the stored URL."""

    def to_representation(self, value: str) -> str:
        return masked_url(str(value))


class ConnectionSerializer(PlainReadModelSerializer[Connection]):
    pages_read_as_rows = True
    url = MaskedUrlField(
        read_only=True,
        help_text="Userinfo removed and every query value shown as `***`; the stored URL keeps them.",
    )
    has_credentials = serializers.SerializerMethodField()
    tool_count = serializers.IntegerField(read_only=True)
    catalog_key = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "catalog_key",
            "transport",
            "url",
            "auth_type",
            "has_credentials",
            "status",
            "last_error",
            "last_synced_at",
            "tool_count",
            "enabled",
            "created_at",
        ]

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_has_credentials(self, connection: Connection) -> bool:  # the column: a page's row has no property
        return bool(connection.credentials_encrypted)

    def get_catalog_key(self, connection: Connection) -> str | None:
        return connection.catalog_key or None

    def get_last_error(self, connection: Connection) -> str | None:
        return connection.last_error or None


class ConnectionWriteSerializer(serializers.Serializer[object]):
    """Credentials (``token``, ``headerName``) are write-only: stored encrypted, never returned."""

    name = serializers.CharField(max_length=200, required=False)
    url = serializers.URLField(max_length=1000, required=False)
    transport = serializers.ChoiceField(choices=Transport.choices, required=False)
    catalog_key = serializers.CharField(max_length=50, required=False, allow_blank=True)
    auth_type = serializers.ChoiceField(choices=AuthType.choices, required=False)
    token = serializers.CharField(max_length=4000, required=False, write_only=True, trim_whitespace=True)
    header_name = serializers.RegexField(r"^[A-Za-z0-9-]{1,100}$", required=False, write_only=True)
    enabled = serializers.BooleanField(required=False)


class ConnectionCreateSerializer(ConnectionWriteSerializer):
    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if not attrs.get("catalog_key"):
            missing = {f: ["This field is required."] for f in ("name", "url", "transport") if not attrs.get(f)}
            if missing:
                raise serializers.ValidationError(missing)
        return attrs


class ToolSerializer(PlainReadModelSerializer[Tool]):
    pages_read_as_rows = True
    connection_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Tool
        fields = ["id", "connection_id", "name", "description", "input_schema", "enabled"]


class ToolPatchSerializer(serializers.Serializer[object]):
    enabled = serializers.BooleanField()


class SyncResultSerializer(serializers.Serializer[object]):
    added = serializers.IntegerField()
    updated = serializers.IntegerField()
    removed = serializers.IntegerField()
    tools = ToolSerializer(many=True)


class CatalogEntrySerializer(PlainReadModelSerializer[CatalogEntry]):
    pages_read_as_rows = True

    class Meta:
        model = CatalogEntry
        fields = ["key", "name", "description", "transport", "url_template", "auth_type", "docs_url"]
