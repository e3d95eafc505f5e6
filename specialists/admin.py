from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from orgs.admin_base.org_owned import OrgOwnedAdmin
from orgs.admin_base.service_saves import changed_values, stored
from specialists import services
from specialists.models import Specialist

WRITABLE = (*services.FIELDS, "tools")  # what the services write (the API's fields)


class ModelNamesField(forms.CharField):
    """A list of model names, written comma-separated."""

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: object) -> list[str]:  # type: ignore[override]  # a list, not a string
        if isinstance(value, list):
            return value
        return [name.strip() for name in str(value or "").split(",") if name.strip()]


class SpecialistAdminForm(forms.ModelForm[Specialist]):
    """The API's rules (an active model within its output limit, the org's enabled tools) are the
    service's: the admin saves through it."""

    fallback_models = ModelNamesField(
        required=False,
        help_text="Models tried in order, comma-separated, when the model fails before its first output "
        "(active models, at most 3, not the model itself).",
    )

    class Meta:
        model = Specialist
        fields = [
            "organization",
            "name",
            "title",
            "description",
            "instructions",
            "model",
            "fallback_models",
            "temperature",
            "max_output_tokens",
            "status",
            "monthly_credit_limit",
            "created_by",
            "tools",
        ]


@admin.register(Specialist)
class SpecialistAdmin(OrgOwnedAdmin[Specialist]):
    form = SpecialistAdminForm
    list_display = ["name", "title", "organization", "model", "status", "monthly_credit_limit", "deleted_at"]
    list_filter = ["status", "model"]
    search_fields = ["name", "title", "organization__name"]
    list_select_related = ["organization"]
    filter_horizontal = ["tools"]
    readonly_fields = ["deleted_at", "created_at", "updated_at"]
    service_error_fields = {"toolIds": "tools"}

    def service_save(self, request: HttpRequest, form: forms.ModelForm[Specialist], change: bool) -> Specialist:
        data = form.cleaned_data
        values = changed_values(form, WRITABLE) if change else {key: data[key] for key in WRITABLE if key in data}
        if "tools" in values:
            values["tools"] = list(values["tools"])
        if change:
            return services.update_specialist(specialist=stored(form), data=values)  # type: ignore[arg-type]  # the form's cleaned values: the service's fields
        return services.create_specialist(
            org=data["organization"],
            created_by=data.get("created_by"),
            data=values,  # type: ignore[arg-type]  # the form's cleaned values: the service's fields
        )

    def get_deleted_objects(
        self, objs: Sequence[Specialist] | QuerySet[Specialist], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        """Nothing cascades and nothing blocks: the specialist is hidden, not removed (the view has
        checked the permission to delete specialists)."""
        return [str(obj) for obj in objs], {str(self.model._meta.verbose_name_plural): len(objs)}, set(), []

    def service_delete(self, request: HttpRequest, obj: Specialist) -> None:
        """Letting a specialist go hides it, as the API does: its chats and usage stay readable."""
        services.delete_specialist(specialist=obj)
