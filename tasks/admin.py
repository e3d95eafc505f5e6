from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

from orgs.admin_base.actions import form_action
from orgs.admin_base.audit_trail import record
from orgs.admin_base.display import LabelledAdmin
from orgs.admin_base.org_owned import OrgOwnedAdmin
from orgs.admin_base.service_saves import changed_values, operator_context, stored
from tasks import services
from tasks.models import Project, Task

apps.get_app_config("django_tasks_database").verbose_name = "Background jobs"  # not "Tasks Database Backend"


@admin.register(Project)
class ProjectAdmin(OrgOwnedAdmin[Project]):
    list_display = ["name", "organization", "status", "workspace", "created_at"]
    list_filter = ["status", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "organization__name"]
    list_select_related = ["organization", "workspace"]

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Project], change: bool) -> Project:
        data = form.cleaned_data
        if change:
            return services.update_project(project=stored(form), data=changed_values(form, services.PROJECT_FIELDS))  # type: ignore[arg-type]  # the form's cleaned values: the service's fields
        values = {key: data[key] for key in services.PROJECT_FIELDS if key in data}
        return services.create_project(org=data["organization"], created_by=data["created_by"], data=values)  # type: ignore[arg-type]  # the form's cleaned values: the service's fields

    def service_delete(self, request: HttpRequest, obj: Project) -> None:
        services.delete_project(context=operator_context(obj.organization), project=obj)


class FailedFilter(admin.SimpleListFilter):
    title = "last run"
    parameter_name = "run"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Task]) -> list[tuple[str, str]]:
        return [("failed", "Failed (can be re-run)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> QuerySet[Task]:
        if self.value() == "failed":
            return queryset.filter(status=Task.Status.TODO).exclude(error="")
        return queryset


@admin.register(Task)
class TaskAdmin(OrgOwnedAdmin[Task]):
    list_display = ["title", "organization", "status", "priority", "assignee_user", "assignee_specialist", "due_date"]
    list_filter = ["status", "priority", FailedFilter, ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["title", "description", "organization__name"]
    list_select_related = ["organization", "assignee_user", "assignee_specialist"]
    actions = ["rerun"]
    service_error_fields = {"assigneeSpecialistId": "assignee_specialist", "assigneeUserId": "assignee_user"}
    run_fields = ["result", "error", "session", "run_message_id"]  # a run writes these

    def get_readonly_fields(self, request: HttpRequest, obj: Task | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), *self.run_fields]

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Task], change: bool) -> Task:
        data = form.cleaned_data
        if change:
            return services.update_task(task=stored(form), data=changed_values(form, services.TASK_FIELDS))  # type: ignore[arg-type]  # the form's cleaned values: the service's fields
        values = {key: data[key] for key in services.TASK_FIELDS if key in data}
        return services.create_task(org=data["organization"], created_by=data["created_by"], data=values)  # type: ignore[arg-type]  # the form's cleaned values: the service's fields

    def service_delete(self, request: HttpRequest, obj: Task) -> None:
        services.delete_task(context=operator_context(obj.organization), task=obj)

    def has_rerun_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        """A run spends the org's credits: operators who may change tasks and manage credits."""
        return request.user.has_perm("tasks.change_task") and request.user.has_perm("billing.manage_credits")

    @admin.action(description="Re-run the selected failed tasks…", permissions=["rerun"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        failed = queryset.filter(status=Task.Status.TODO).exclude(error="").select_related("organization")
        if not failed.exists():
            self.message_user(request, "Only a failed task is re-run: none is selected.", messages.WARNING)
            return None
        others = queryset.count() - failed.count()
        if others and "apply" not in request.POST:
            self.message_user(request, f"{others} selected task(s) did not fail: they are left as they are.")
        return form_action(self, request, failed, title="Re-run failed tasks", apply=self._rerun)

    def _rerun(self, task: Task, data: Mapping[str, object], request: HttpRequest) -> None:
        previous_error = task.error
        run = services.start_task_run(context=operator_context(task.organization), task_id=task.pk)
        record(
            request,
            action="rerun_task",
            obj=task,
            org=task.organization,
            reason=str(data["reason"]),
            details={"previous_error": previous_error[:300], "message": str(run.message_id)},
        )


class BackgroundJobAdmin(LabelledAdmin[Model], DBTaskResultAdmin):
    """The queue's jobs, named by what they run (not "DBTaskResult object (…)")."""

    list_display = ("job", "task_name", "status", "enqueued_at", "started_at", "finished_at", "priority", "queue_name")

    def object_label(self, obj: Model) -> str:
        job = cast("DBTaskResult[..., object]", obj)  # this page's records
        return f"{job.task_name.rsplit('.', 1)[-1]} ({job.status})"

    @admin.display(description="Job", ordering="task_name")
    def job(self, obj: DBTaskResult[..., object]) -> str:
        return self.object_label(obj)


if admin.site.is_registered(DBTaskResult):
    admin.site.unregister(DBTaskResult)
admin.site.register(DBTaskResult, BackgroundJobAdmin)
