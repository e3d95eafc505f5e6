from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from billing.models import BudgetAlert, LedgerEntry, ModelRate
from core.filters import DateOrDateTimeFilter


class LedgerFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    kind = django_filters.ChoiceFilter(choices=LedgerEntry.Kind.choices)
    specialistId = django_filters.UUIDFilter(field_name="specialist_id")  # noqa: N815
    model = django_filters.CharFilter(field_name="model")
    userId = django_filters.UUIDFilter(field_name="user_id")  # noqa: N815
    apiKeyId = django_filters.UUIDFilter(field_name="api_key_id")  # noqa: N815
    to = DateOrDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields: list[str] = []


# "from" is a Python keyword: declare it after the class body.
LedgerFilter.base_filters["from"] = DateOrDateTimeFilter(field_name="created_at", lookup_expr="gte")


class AlertFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    acknowledged = django_filters.BooleanFilter(method="filter_acknowledged")

    class Meta:
        model = BudgetAlert
        fields: list[str] = []

    def filter_acknowledged(self, queryset: QuerySet[BudgetAlert], name: str, value: bool) -> QuerySet[BudgetAlert]:
        return queryset.filter(acknowledged_at__isnull=not value)


class ModelRateFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no type information
    active = django_filters.BooleanFilter()
    provider = django_filters.ChoiceFilter(choices=ModelRate.Provider.choices)

    class Meta:
        model = ModelRate
        fields: list[str] = []
