"""The circuit's history: its page, and the inline on an organization's page."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from billing.models import CircuitEvent
from orgs.admin_base.read_only import ReadOnlyAdmin
from orgs.models import Organization


class CircuitEventInline(admin.TabularInline[CircuitEvent, Organization]):
    """The circuit's history: who opened or closed it, and why."""

    model = CircuitEvent
    fk_name = "organization"
    extra = 0
    fields = readonly_fields = ("created_at", "state", "reason", "actor")
    can_delete = False
    verbose_name = "circuit change"
    verbose_name_plural = "circuit history"

    def has_add_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False


@admin.register(CircuitEvent)
class CircuitEventAdmin(ReadOnlyAdmin[CircuitEvent]):
    list_display = ["created_at", "organization", "state", "reason", "actor"]
    list_filter = ["state", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["organization__name", "reason", "actor__email"]
    list_select_related = ["organization", "actor"]
