"""The holds' page (reservations): what calls held and what they were charged."""

from __future__ import annotations

from django.contrib import admin

from billing.models import Reservation
from orgs.admin_base.display import credits_text
from orgs.admin_base.read_only import ReadOnlyAdmin


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin[Reservation]):
    list_display = ["created_at", "organization", "model", "amount_display", "status", "charged_display"]
    list_filter = ["status", ("organization", admin.RelatedOnlyFieldListFilter), "model"]
    search_fields = ["organization__name"]
    list_select_related = ["organization"]

    @admin.display(description="Held", ordering="amount")
    def amount_display(self, obj: Reservation) -> str:
        return credits_text(obj.amount)

    @admin.display(description="Charged", ordering="charged")
    def charged_display(self, obj: Reservation) -> str:
        return credits_text(obj.charged)
