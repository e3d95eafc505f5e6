"""Shared filters: ISO date-or-datetime bounds and camelCase ordering."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

import django_filters
from django import forms
from django.db.models import Model, QuerySet
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
    """``ordering=-createdAt``: camelCase names mapped to model fields."""

    def get_ordering(self, request: Request, queryset: QuerySet[Model], view: APIView) -> Sequence[str] | None:
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
