from __future__ import annotations

from rest_framework import serializers

from workspaces.models import Workspace, WorkspaceFile


class WorkspaceSerializer(serializers.ModelSerializer):
    created_by = serializers.UUIDField(source="created_by_id", read_only=True)
    file_count = serializers.IntegerField(read_only=True)
    thread_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Workspace
        fields = ["id", "name", "description", "created_by", "created_at", "updated_at", "file_count", "thread_count"]


class WorkspaceWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class WorkspaceFileSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.UUIDField(source="uploaded_by_id", read_only=True)

    class Meta:
        model = WorkspaceFile
        fields = ["id", "filename", "content_type", "size", "uploaded_by", "created_at"]


class FileUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
