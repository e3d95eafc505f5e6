"""How admin pages show things: a change page headed by names, credits as operators read them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from core.credits import quantize_credits


class LabelledAdmin[M: Model](admin.ModelAdmin[M]):
    """A change page headed by ``object_label(obj)`` (names, not the ids a model's ``__str__`` shows)."""

    def object_label(self, obj: M) -> str:
        return str(obj)

    def render_change_form(  # noqa: PLR0917 - Django's signature
        self,
        request: HttpRequest,
        context: dict[str, object],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: M | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["subtitle"] = self.object_label(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


def credits_text(value: Decimal | int | str | None) -> str:
    """Credits as operators read them: grouped, six places, with the unit ("1,234.500000 credits")."""
    if value is None:
        return "-"
    return f"{quantize_credits(value):,.6f} credits"


def when_text(value: datetime | None) -> str:
    """A moment as operators read it on a page of many ("2026-06-15 12:00 UTC"), or "-"."""
    return f"{localtime(value):%Y-%m-%d %H:%M %Z}" if value is not None else "-"


def table_html(headers: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str) -> SafeString:
    """A read-only table on a change page: each cell escaped unless it is already safe HTML (a link)."""
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in r)),) for r in rows)
    )
    if not body:
        return format_html("<p>{}</p>", empty)
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    return format_html('<table class="org-page-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)
