"""Shared filters: ISO date-or-datetime bounds and camelCase ordering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time

import django_filters
from django import forms
from django.db.models import Expression, Model, OrderBy, QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from djangorestframework_camel_case.util import camel_to_underscore
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.serializers import ModelSerializer
from rest_framework.views import APIView

from core.renderers import camel_key


class DateOrDateTimeField(forms.Field):
    def to_python(self, value: object) -> datetime | None:
        if value in (None, ""):
            return None
        text = str(value).strip().replace(" ", "+")
        try:
            parsed = parse_datetime(text)
        except ValueError:  # well-formed but impossible (month 13, offset over 24 h)
            raise forms.ValidationError("Enter a valid ISO 8601 date or date-time.") from None
        if parsed is None:
            try:
                day = parse_date(text)
            except ValueError:
                raise forms.ValidationError("Enter a valid ISO 8601 date or date-time.") from None
            if day is None:
                raise forms.ValidationError("Enter an ISO 8601 date or date-time.")
            parsed = datetime.combine(day, time.min)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        try:  # an offset like -20:24 is valid ISO 8601 but not for the database: store in UTC
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This date-time cannot be represented in UTC.") from None


class DateOrDateTimeFilter(django_filters.Filter):  # type: ignore[misc]  # django-filter ships no types
    """``from`` is inclusive (gte); ``to``/``dueBefore`` exclusive (lt)."""

    field_class = DateOrDateTimeField


type _RowsSerializer = type[ModelSerializer[Model]]


def _page_serializer(view: APIView) -> _RowsSerializer | None:
    """The serializer of the page a view's action answers when it is another model's than the view's
    (``page_serializers``: a connection's tools, a workspace's files, a webhook's deliveries)."""
    page_serializers: Mapping[str, _RowsSerializer] = getattr(view, "page_serializers", {})
    return page_serializers.get(getattr(view, "action", None) or "")


class _PageOf:
    """A view's page of another model, as DRF's ordering asks a view for the serializer of its rows."""

    def __init__(self, serializer_class: _RowsSerializer) -> None:
        self.serializer_class = serializer_class

    def get_serializer_class(self) -> _RowsSerializer:
        return self.serializer_class


class CamelOrderingFilter(OrderingFilter):
    """``ordering=-createdAt``: camelCase names mapped to the fields of the page's serializer (the
    view's, or its action's ``page_serializers`` entry); and to the expressions a view names in
    ``ordering_expressions`` (a shown value that is no column: {snake_case name: expression}), whose
    order ends with the primary key so that equal values never overlap between pages."""

    def get_valid_fields(
        self, queryset: QuerySet[Model], view: APIView, context: Mapping[str, object] | None = None
    ) -> list[tuple[str, str]]:
        page_serializer = _page_serializer(view)
        rows_view = view if page_serializer is None else _PageOf(page_serializer)
        fields: list[tuple[str, str]] = super().get_valid_fields(queryset, rows_view, context)  # type: ignore[arg-type]  # DRF asks it for its serializer only
        return [*fields, *((name, name) for name in getattr(view, "ordering_expressions", {}))]

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, object]]:
        """The ``ordering`` parameter, naming the fields this list can be ordered by (what
        ``get_ordering`` accepts; any other name is ignored and the list keeps its default order)."""
        names = ", ".join(f"`{name}`" for name in self.ordering_names(view))
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Fields to order by, comma-separated, each with `-` first for descending: {names}. "
                "Any other name is ignored (the list keeps its default order).",
                "schema": {"type": "string"},
            }
        ]

    def ordering_names(self, view: APIView) -> list[str]:
        """The camelCase names ``ordering`` accepts on ``view``'s list."""
        page_serializer = _page_serializer(view)
        queryset: QuerySet[Model] | None = getattr(view, "queryset", None) if page_serializer is None else None
        if queryset is None:
            rows: _RowsSerializer = page_serializer or view.get_serializer_class()  # type: ignore[attr-defined]  # a list's view
            model: type[Model] = rows.Meta.model
            queryset = model._base_manager.none()
        names = [camel_key(name)[0] for name, _ in self.get_valid_fields(queryset, view, {})]
        return [name for name in dict.fromkeys(names) if camel_key(camel_to_underscore(name))[0] == name]

    def filter_queryset[M: Model, R](self, request: Request, queryset: QuerySet[M, R], view: APIView) -> QuerySet[M, R]:
        page_serializer = _page_serializer(view)
        if page_serializer is not None and queryset.model is not page_serializer.Meta.model:
            return queryset  # the object whose page this is (``get_object``): the ordering is the page's
        ordering = self.get_ordering(request, queryset, view)
        if not ordering:
            return queryset
        expressions: Mapping[str, Expression] = getattr(view, "ordering_expressions", {})
        terms: list[str | OrderBy] = []
        for term in ordering:
            shown = expressions.get(term.lstrip("-"))
            terms.append(term if shown is None else shown.desc() if term.startswith("-") else shown.asc())
        tie_break = ["pk"] if any(isinstance(term, OrderBy) for term in terms) else []
        return queryset.order_by(*terms, *tie_break)

    def get_ordering[M: Model, R](
        self, request: Request, queryset: QuerySet[M, R], view: APIView
    ) -> Sequence[str] | None:
        params = request.query_params.get(self.ordering_param)
        if params:
            fields = []
            for raw in params.split(","):
                term = raw.strip()
                desc = term.startswith("-")
                name = camel_to_underscore(term.lstrip("-"))
                fields.append(f"-{name}" if desc else name)
            ordering = self.remove_invalid_fields(queryset, fields, view, request)
            if ordering:
                return ordering
        return self.get_default_ordering(view)


def ordered_page[M: Model, R](request: Request, rows: QuerySet[M, R], view: APIView) -> QuerySet[M, R]:
    """A page of another model than the view's (``page_serializers``) in the ``ordering`` asked for,
    as the view's own list is ordered (else in ``rows``' own order)."""
    return CamelOrderingFilter().filter_queryset(request, rows, view)
