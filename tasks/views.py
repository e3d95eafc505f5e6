from __future__ import annotations

import uuid

import django_filters
from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing.errors import REFUSALS
from core.errors import InvalidStateError, ValidationFailed
from core.filters import DateOrDateTimeFilter
from core.row_counts import related_count
from core.views import validated_as
from orgs.api import OrgViewSet
from specialists.errors import SpecialistInactiveError
from tasks import services
from tasks.models import Project, Task
from tasks.serializers import (
    ProjectSerializer,
    ProjectWriteSerializer,
    TaskRunSerializer,
    TaskSerializer,
    TaskWriteSerializer,
)


class ProjectFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    status = django_filters.ChoiceFilter(choices=Project.Status.choices)

    class Meta:
        model = Project
        fields: list[str] = []


class TaskFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    status = django_filters.ChoiceFilter(choices=Task.Status.choices)
    projectId = django_filters.UUIDFilter(field_name="project_id")  # noqa: N815
    assigneeUserId = django_filters.UUIDFilter(field_name="assignee_user_id")  # noqa: N815
    assigneeSpecialistId = django_filters.UUIDFilter(field_name="assignee_specialist_id")  # noqa: N815
    dueBefore = DateOrDateTimeFilter(field_name="due_date", lookup_expr="lt")  # noqa: N815

    class Meta:
        model = Task
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(
        summary="The organization's projects",
    ),
    retrieve=extend_schema(
        summary="One project",
    ),
)
class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgViewSet[Project]):
    queryset = Project.objects.annotate(task_count=related_count(Project, "tasks"))
    serializer_class = ProjectSerializer
    filterset_class = ProjectFilter
    ordering = ["-created_at"]

    def _out(self, project: Project) -> dict[str, object]:
        return ProjectSerializer(self.get_queryset().get(pk=project.pk)).data

    def _data(self, request: Request, partial: bool) -> services.ProjectFields:
        serializer = ProjectWriteSerializer(data=request.data, partial=partial, context={"request": request})
        serializer.is_valid(raise_exception=True)
        return validated_as(serializer, services.ProjectFields)

    @extend_schema(request=ProjectWriteSerializer, responses={201: ProjectSerializer}, summary="Create a project")
    def create(self, request: Request) -> Response:
        project = services.create_project(
            org=self.org, data=self._data(request, partial=False), **self.org_context.creator()
        )
        return Response(self._out(project), status=status.HTTP_201_CREATED)

    @extend_schema(request=ProjectWriteSerializer, responses={200: ProjectSerializer}, summary="Update a project")
    def update(self, request: Request, pk: uuid.UUID) -> Response:
        project = self.get_object()
        services.update_project(project=project, data=self._data(request, partial=True))
        return Response(self._out(project))

    @extend_schema(summary="Delete a project and its tasks (its creator or an admin)")
    def destroy(self, request: Request, pk: uuid.UUID) -> Response:
        services.delete_project(context=self.org_context, project=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="The organization's tasks",
        description=("Filter by `status`, `projectId`, `assigneeUserId`, `assigneeSpecialistId` and `dueBefore`."),
    ),
    retrieve=extend_schema(
        summary="One task, with the last run's result or error",
    ),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgViewSet[Task]):
    errors = {"run": (InvalidStateError, SpecialistInactiveError, *REFUSALS)}
    queryset = Task.objects.all()
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    ordering = ["-created_at"]
    ordering_fields = ["created_at", "updated_at", "due_date", "priority", "title"]

    def scope_queryset(self, queryset: QuerySet[Task]) -> QuerySet[Task]:
        """A key limited to some specialists sees no task assigned to another specialist."""
        allowed = self.org_context.allowed_specialist_ids
        if allowed is None:
            return queryset
        return queryset.filter(Q(assignee_specialist__isnull=True) | Q(assignee_specialist_id__in=allowed))

    def _data(self, request: Request, partial: bool) -> services.TaskFields:
        serializer = TaskWriteSerializer(data=request.data, partial=partial, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = validated_as(serializer, services.TaskFields)
        allowed = self.org_context.allowed_specialist_ids
        specialist = data.get("assignee_specialist")
        if allowed is not None and specialist is not None and specialist.pk not in allowed:
            raise ValidationFailed("assigneeSpecialistId", "Not found in this organization.")
        return data

    @extend_schema(request=TaskWriteSerializer, responses={201: TaskSerializer}, summary="Create a task")
    def create(self, request: Request) -> Response:
        task = services.create_task(org=self.org, data=self._data(request, partial=False), **self.org_context.creator())
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=TaskWriteSerializer, responses={200: TaskSerializer}, summary="Update a task (omitted fields stay)"
    )
    def update(self, request: Request, pk: uuid.UUID) -> Response:
        task = services.update_task(task=self.get_object(), data=self._data(request, partial=True))
        return Response(TaskSerializer(task).data)

    @extend_schema(summary="Delete a task (its creator or an admin)")
    def destroy(self, request: Request, pk: uuid.UUID) -> Response:
        services.delete_task(context=self.org_context, task=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={202: TaskRunSerializer},
        summary="Have the assigned specialist work the task (an async chat turn, billed)",
        description="Refusals for credits and budgets happen here, before anything is queued. A task "
        "without a specialist assignee, or not todo, is not run.",
    )
    def run(self, request: Request, pk: uuid.UUID) -> Response:
        task = self.get_object()
        started = services.start_task_run(context=self.org_context, task_id=task.pk)
        body = {
            "task_id": started.task_id,
            "session_id": started.session_id,
            "message_id": started.message_id,
            "status": "queued",
        }
        return Response(TaskRunSerializer(body).data, status=status.HTTP_202_ACCEPTED)
