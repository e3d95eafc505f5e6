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
from rest_framework.views import APIView


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


class CamelOrderingFilter(OrderingFilter):
    """``ordering=-createdAt``: camelCase names mapped to model fields; and to the expressions a view
    names in ``ordering_expressions`` (a shown value that is no column: {snake_case name: expression}),
    whose order ends with the primary key so that equal values never overlap between pages."""

    def get_valid_fields(
        self, queryset: QuerySet[Model], view: APIView, context: Mapping[str, object] | None = None
    ) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = super().get_valid_fields(queryset, view, context)
        return [*fields, *((name, name) for name in getattr(view, "ordering_expressions", {}))]

    def filter_queryset[M: Model, R](self, request: Request, queryset: QuerySet[M, R], view: APIView) -> QuerySet[M, R]:
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
