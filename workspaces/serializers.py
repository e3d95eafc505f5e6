from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import PlainReadModelSerializer
from workspaces.models import Workspace, WorkspaceFile

HAS_TEXT = "has_text"  # the annotation of a files page: whether a file's text was extracted


class WorkspaceSerializer(PlainReadModelSerializer[Workspace]):
    pages_read_as_rows = True
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)  # null: an API key
    file_count = serializers.IntegerField(read_only=True)
    thread_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Workspace
        fields = ["id", "name", "description", "created_by", "created_at", "updated_at", "file_count", "thread_count"]


class WorkspaceWriteSerializer(serializers.Serializer[object]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class WorkspaceFileSerializer(PlainReadModelSerializer[WorkspaceFile]):
    uploaded_by = serializers.UUIDField(source="uploaded_by_id", read_only=True, allow_null=True)  # null: an API key
    text_extracted = serializers.SerializerMethodField(
        help_text="Whether the file's text is available to specialists: false for an image, an empty file, "
        "or text that could not be extracted within the server's time and size bounds.",
    )

    pages_read_as_rows = True  # the files page reads its rows, the text left unread
    page_annotations = {"text_extracted": (HAS_TEXT, "boolean")}  # the page's flag, as the method reads it

    class Meta:
        model = WorkspaceFile
        fields = ["id", "filename", "content_type", "size", "uploaded_by", "created_at", "text_extracted"]

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_text_extracted(self, item: WorkspaceFile) -> bool:
        """A listed file's flag as its query read it (``HAS_TEXT``: the list never reads the text
        itself, up to UPLOAD_EXTRACT_MAX_CHARS a file), else the model's."""
        has_text: bool | None = getattr(item, HAS_TEXT, None)
        return item.text_extracted if has_text is None else has_text


class FileUploadSerializer(serializers.Serializer[object]):
    file = serializers.FileField()
