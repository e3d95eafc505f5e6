from __future__ import annotations

from django import forms
from django.contrib import admin

from billing.models import ModelRate
from orgs.admin_mixins import OrgOwnedAdmin
from specialists import services
from specialists.models import Specialist


class SpecialistAdminForm(forms.ModelForm):
    """A specialist's model must be an active model rate (the API's rule)."""

    class Meta:
        model = Specialist
        fields = [
            "organization",
            "name",
            "title",
            "description",
            "instructions",
            "model",
            "temperature",
            "max_output_tokens",
            "status",
            "monthly_credit_limit",
            "created_by",
            "deleted_at",
            "tools",
        ]

    def clean_model(self) -> str:
        model = self.cleaned_data["model"]
        if not ModelRate.objects.filter(model=model, active=True).exists():
            raise forms.ValidationError(f"'{model}' is not an active model.")
        return model


@admin.register(Specialist)
class SpecialistAdmin(OrgOwnedAdmin):
    form = SpecialistAdminForm
    list_display = ["name", "title", "organization", "model", "status", "monthly_credit_limit", "deleted_at"]
    list_filter = ["status", "model"]
    search_fields = ["name", "title", "organization__name"]
    list_select_related = ["organization"]
    filter_horizontal = ["tools"]
    readonly_fields = ["created_at", "updated_at"]

    def get_deleted_objects(self, objs, request):
        """Nothing cascades and nothing blocks: the specialist is hidden, not removed (the view has
        checked the permission to delete specialists)."""
        return [str(obj) for obj in objs], {self.model._meta.verbose_name_plural: len(objs)}, set(), []

    def delete_model(self, request, obj) -> None:
        """Letting a specialist go hides it, as the API does: its chats and usage stay readable."""
        services.delete_specialist(specialist=obj)

    def delete_queryset(self, request, queryset) -> None:
        for specialist in queryset:
            services.delete_specialist(specialist=specialist)
