"""The list filters' backend: django-filter's, skipped for a request that names none of the view's
filters."""

from __future__ import annotations

from django.db.models import Model, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.request import Request
from rest_framework.views import APIView


class FilterSetBackend(DjangoFilterBackend):  # type: ignore[misc]  # django-filter ships no types
    """``DjangoFilterBackend`` that builds and validates its filter form only when the query names
    one of the filter set's parameters. Without one every filter of the project's filter sets is
    given an empty value, which leaves the queryset as it is (none is required, none filters on an
    empty value): an unfiltered page, the default of every list, skips the form and has the same
    rows."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Model], view: APIView) -> QuerySet[Model]:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or not any(name in request.query_params for name in filterset_class.base_filters):
            return queryset
        filtered: QuerySet[Model] = super().filter_queryset(request, queryset, view)
        return filtered
