from __future__ import annotations

from rest_framework import serializers

from core.serializers import PlainReadModelSerializer
from workspaces.models import Workspace, WorkspaceFile


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
    text_extracted = serializers.BooleanField(
        read_only=True,
        help_text="Whether the file's text is available to specialists: false for an image, an empty file, "
        "or text that could not be extracted within the server's time and size bounds.",
    )

    class Meta:
        model = WorkspaceFile
        fields = ["id", "filename", "content_type", "size", "uploaded_by", "created_at", "text_extracted"]


class FileUploadSerializer(serializers.Serializer[object]):
    file = serializers.FileField()
