from __future__ import annotations

from django import forms
from django.contrib import admin

from mcps.models import Tool
from specialists.models import Specialist


class SpecialistAdminForm(forms.ModelForm):
    """Tools are picked from the specialist's own organization (the API's rule, here too)."""

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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "tools" in self.fields:
            org_id = self.instance.organization_id if self.instance.pk else None
            self.fields["tools"].queryset = (
                Tool.objects.filter(organization_id=org_id).select_related("connection")
                if org_id
                else Tool.objects.none()
            )

    def clean(self) -> dict:
        data = super().clean()
        org = data.get("organization") or getattr(self.instance, "organization", None)
        foreign = [tool for tool in data.get("tools") or [] if org is None or tool.organization_id != org.pk]
        if foreign:
            self.add_error("tools", "Tools must belong to the specialist's organization.")
        return data


@admin.register(Specialist)
class SpecialistAdmin(admin.ModelAdmin):
    form = SpecialistAdminForm
    list_display = ["name", "title", "organization", "model", "status", "monthly_credit_limit", "deleted_at"]
    list_filter = ["status", "model"]
    search_fields = ["name", "title", "organization__name"]
    list_select_related = ["organization"]
    filter_horizontal = ["tools"]
    readonly_fields = ["created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # a specialist never moves to another organization (its tools, sessions and ledger are there)
        return [*self.readonly_fields, "organization"] if obj is not None else self.readonly_fields
