from __future__ import annotations

from django.contrib import admin

from specialists.models import Specialist


@admin.register(Specialist)
class SpecialistAdmin(admin.ModelAdmin):
    list_display = ["name", "title", "organization", "model", "status", "monthly_credit_limit", "deleted_at"]
    list_filter = ["status", "model"]
    search_fields = ["name", "title", "organization__name"]
    list_select_related = ["organization"]
    filter_horizontal = ["tools"]
    readonly_fields = ["created_at", "updated_at"]
