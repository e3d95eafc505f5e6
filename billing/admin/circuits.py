"""The circuits' page: each organization's spending circuit, opened and closed by operators."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.admin.actions import circuit_actions
from billing.admin.permissions import MoneyPermission
from billing.models import Circuit
from orgs.admin_base.display import LabelledAdmin
from orgs.admin_base.read_only import ReadOnlyAdmin


def _organization_name(circuit: Circuit) -> str:
    return circuit.organization.name


@admin.register(Circuit)
class CircuitAdmin(MoneyPermission, LabelledAdmin[Circuit], ReadOnlyAdmin[Circuit]):
    list_display = ["circuit", "organization", "state", "reason", "opened_at", "opened_by"]
    list_filter = ["state"]
    search_fields = ["organization__name"]
    fields = readonly_fields = (
        "organization",
        "state",
        "reason",
        "opened_at",
        "opened_by",
        "opened_by_operator",
        "updated_at",
    )
    list_select_related = ["organization", "opened_by"]
    actions = [*circuit_actions(_organization_name)]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Circuit]:
        return super().get_queryset(request).select_related("organization")

    def object_label(self, obj: Circuit) -> str:
        return f"{obj.organization.name}: {obj.state}"

    @admin.display(description="Circuit", ordering="organization__name")
    def circuit(self, obj: Circuit) -> str:
        return self.object_label(obj)
