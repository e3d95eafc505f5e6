"""How admin pages show things: a change page headed by names, credits as operators read them."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.db.models import Model

from core.credits import quantize_credits


class LabelledAdmin(admin.ModelAdmin):
    """A change page headed by ``object_label(obj)`` (names, not the ids a model's ``__str__`` shows)."""

    def object_label(self, obj: Model) -> str:
        return str(obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):  # noqa: ANN001, ANN201, PLR0917
        if obj is not None:
            context["subtitle"] = self.object_label(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


def credits_text(value: Decimal | int | str | None) -> str:
    """Credits as operators read them: grouped, six places, with the unit ("1,234.500000 credits")."""
    if value is None:
        return "-"
    return f"{quantize_credits(value):,.6f} credits"
