from __future__ import annotations

from rest_framework import serializers

from core.fields import EmptyAsNullCharField
from core.serializers import PlainReadModelSerializer
from orgs.fields import OrgMemberField, OrgRelatedField
from specialists.models import Specialist
from tasks.models import Project, Task
from workspaces.models import Workspace


class ProjectSerializer(PlainReadModelSerializer[Project]):
    pages_read_as_rows = True
    workspace_id = serializers.UUIDField(read_only=True, allow_null=True)
    task_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "status", "workspace_id", "created_at", "task_count"]


class ProjectWriteSerializer(serializers.Serializer[object]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Project.Status.choices, required=False)
    workspace_id = OrgRelatedField(model=Workspace, required=False, allow_null=True, source="workspace")


class TaskSerializer(PlainReadModelSerializer[Task]):
    pages_read_as_rows = True
    project_id = serializers.UUIDField(read_only=True, allow_null=True)
    assignee_user_id = serializers.UUIDField(read_only=True, allow_null=True)
    assignee_specialist_id = serializers.UUIDField(read_only=True, allow_null=True)
    session_id = serializers.UUIDField(read_only=True, allow_null=True)
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)  # null: an API key
    result = EmptyAsNullCharField(read_only=True, allow_null=True)
    error = EmptyAsNullCharField(read_only=True, allow_null=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "title",
            "description",
            "status",
            "priority",
            "project_id",
            "assignee_user_id",
            "assignee_specialist_id",
            "due_date",
            "result",
            "error",
            "session_id",
            "created_by",
            "created_at",
            "updated_at",
        ]


class TaskWriteSerializer(serializers.Serializer[object]):
    title = serializers.CharField(max_length=300)
    description = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Task.Status.choices, required=False)
    priority = serializers.ChoiceField(choices=Task.Priority.choices, required=False)
    project_id = OrgRelatedField(model=Project, required=False, allow_null=True, source="project")
    assignee_user_id = OrgMemberField(required=False, allow_null=True, source="assignee_user")
    assignee_specialist_id = OrgRelatedField(
        model=Specialist, required=False, allow_null=True, source="assignee_specialist"
    )
    due_date = serializers.DateField(required=False, allow_null=True)


class TaskRunSerializer(serializers.Serializer[object]):
    task_id = serializers.UUIDField()
    session_id = serializers.UUIDField()
    message_id = serializers.UUIDField()
    status = serializers.CharField()
